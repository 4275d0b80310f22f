module example.com/editorsfixture

go 1.21
