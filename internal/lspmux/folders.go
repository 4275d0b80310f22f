package lspmux

import (
	"encoding/json"
	"strings"

	"github.com/procref/procref/internal/lspframe"
)

// changeFolders applies c's didChangeWorkspaceFolders to its folders; the
// backend hears of folders no other client has (addFolders, dropFolders).
func (m *Mux) changeFolders(c *client, body, params []byte) error {
	var p struct {
		Event struct {
			Added   []folder `json:"added"`
			Removed []folder `json:"removed"`
		} `json:"event"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil
	}
	return m.forward(c, body, func(int64) (item, func()) {
		m.dropFolders(c, true)
		keep := c.folders[:0]
		for _, f := range c.folders {
			removed := false
			for _, r := range p.Event.Removed {
				removed = removed || sameFolder(r.URI, f.URI)
			}
			if !removed {
				keep = append(keep, f)
			}
		}
		c.folders = append(keep, p.Event.Added...)
		m.addFolders(c)
		return item{}, nil
	})
}

// initFolders returns the workspace folders a client's initialize names:
// workspaceFolders, else rootUri, else rootPath.
func initFolders(params []byte) []folder {
	var p struct {
		WorkspaceFolders []folder `json:"workspaceFolders"`
		RootURI          string   `json:"rootUri"`
		RootPath         string   `json:"rootPath"`
	}
	sp, err := lspframe.Members(params, "workspaceFolders", "rootUri", "rootPath")
	if err != nil {
		return nil
	}
	if sp[0].Ok() {
		json.Unmarshal(sp[0].Of(params), &p.WorkspaceFolders)
	}
	if len(p.WorkspaceFolders) > 0 {
		return p.WorkspaceFolders
	}
	if sp[1].Ok() {
		json.Unmarshal(sp[1].Of(params), &p.RootURI)
	}
	if sp[2].Ok() {
		json.Unmarshal(sp[2].Of(params), &p.RootPath)
	}
	uri := p.RootURI
	if uri == "" && p.RootPath != "" {
		uri = "file://" + p.RootPath
	}
	if uri == "" {
		return nil
	}
	name := strings.TrimSuffix(uri, "/")
	name = name[strings.LastIndexByte(name, '/')+1:]
	return []folder{{URI: uri, Name: name}}
}

func sameFolder(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// addFolders adds c's folders to the union and tells the backend about new
// ones (global share scope). Called with mu held.
func (m *Mux) addFolders(c *client) {
	var added []folder
	for _, f := range c.folders {
		key := strings.TrimSuffix(f.URI, "/")
		ref := m.folders[key]
		if ref == nil {
			ref = &folderRef{name: f.Name}
			m.folders[key] = ref
		}
		ref.n++
		if !m.backendFold[key] && m.phase == phaseRunning {
			added = append(added, f)
		}
	}
	m.tellFolders(added, nil)
}

// dropFolders removes c's folders from the union and tells the backend to
// forget folders no client has any more. Called with mu held.
func (m *Mux) dropFolders(c *client, live bool) {
	if !c.inited {
		return // its folders were never added (it left before admission)
	}
	var removed []folder
	for _, f := range c.folders {
		key := strings.TrimSuffix(f.URI, "/")
		ref := m.folders[key]
		if ref == nil {
			continue
		}
		if ref.n--; ref.n <= 0 {
			delete(m.folders, key)
			if m.backendFold[key] && live {
				removed = append(removed, f)
			}
		}
	}
	m.tellFolders(nil, removed)
}

// tellFolders sends workspace/didChangeWorkspaceFolders when the share
// scope is global and the backend supports it. Called with mu held.
func (m *Mux) tellFolders(added, removed []folder) {
	if !m.cfg.ShareGlobal || (len(added) == 0 && len(removed) == 0) {
		return
	}
	if !m.folderCaps {
		m.log.Warn("language server does not support workspace folder changes; a client's folders were not added: share per root instead",
			"added", len(added))
		return
	}
	for _, f := range added {
		m.backendFold[strings.TrimSuffix(f.URI, "/")] = true
	}
	for _, f := range removed {
		delete(m.backendFold, strings.TrimSuffix(f.URI, "/"))
	}
	if added == nil {
		added = []folder{}
	}
	if removed == nil {
		removed = []folder{}
	}
	m.toServer(msgNotification("workspace/didChangeWorkspaceFolders", mustJSON(map[string]any{
		"event": map[string]any{"added": added, "removed": removed},
	})), nil)
}

// folderList is the union of the clients' folders (workspace/workspaceFolders).
func (m *Mux) folderList() []folder {
	out := make([]folder, 0, len(m.folders))
	for uri, ref := range m.folders {
		out = append(out, folder{URI: uri, Name: ref.name})
	}
	return out
}

type folderRef struct {
	name string
	n    int
}

type folder struct {
	URI  string `json:"uri"`
	Name string `json:"name"`
}
