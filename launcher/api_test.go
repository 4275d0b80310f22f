package launcher_test

import (
	"bytes"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"strings"
	"testing"
)

// TestAPIInLibraryTerms: no exported declaration of package launcher
// (what `go doc -all` shows) carries a type of procref's handshake or
// discovery packages, or a token: those are the supervisor's business.
func TestAPIInLibraryTerms(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	p := doc.New(pkgs["launcher"], "github.com/procref/procref/launcher", 0)
	var decls []ast.Decl
	for _, f := range p.Funcs {
		decls = append(decls, f.Decl)
	}
	for _, typ := range p.Types {
		decls = append(decls, typ.Decl)
		for _, f := range append(typ.Funcs, typ.Methods...) {
			decls = append(decls, f.Decl)
		}
	}
	for _, v := range append(p.Vars, p.Consts...) {
		decls = append(decls, v.Decl)
	}
	for _, d := range decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			fd.Body = nil
		}
		var b bytes.Buffer
		printer.Fprint(&b, fset, d)
		src := b.String()
		for _, bad := range []string{"discovery.", "handshake.", "Token"} {
			if strings.Contains(src, bad) {
				t.Errorf("exported declaration mentions %q:\n%s", bad, src)
			}
		}
	}
}
