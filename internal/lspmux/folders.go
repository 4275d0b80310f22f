package lspmux

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// changeFolders applies c's didChangeWorkspaceFolders to its folders; the
// backend hears only the net change of the union (syncFolders): a folder
// that stays is never removed and re-added (pylsp, told so, drops the
// open documents in it, unsaved edits included).
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
	return m.forward(c, body, func(int64) (mux.Item, func()) {
		m.refFolders(c, -1)
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
		for _, f := range p.Event.Added {
			if !slices.ContainsFunc(keep, func(k folder) bool { return sameFolder(k.URI, f.URI) }) {
				keep = append(keep, f)
			}
		}
		c.folders = keep
		m.refFolders(c, +1)
		m.syncFolders()
		return mux.Item{}, nil
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
	sp, err := wire.Members(params, "workspaceFolders", "rootUri", "rootPath")
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

// addFolders adds c's folders to the union and tells the backend the net
// change. Called with mu held.
func (m *Mux) addFolders(c *client) {
	m.refFolders(c, +1)
	m.syncFolders()
}

// dropFolders removes c's folders from the union and, if live, tells the
// backend the net change. Called with mu held.
func (m *Mux) dropFolders(c *client, live bool) {
	if !c.inited {
		return // its folders were never added (it left before admission)
	}
	m.refFolders(c, -1)
	if live {
		m.syncFolders()
	}
}

// refFolders counts c's folders into (+1) or out of (-1) the union.
// Called with mu held.
func (m *Mux) refFolders(c *client, delta int) {
	for _, f := range c.folders {
		key := strings.TrimSuffix(f.URI, "/")
		ref := m.folders[key]
		if ref == nil {
			if delta < 0 {
				continue
			}
			ref = &folderRef{name: f.Name}
			m.folders[key] = ref
		}
		if ref.n += delta; ref.n <= 0 {
			delete(m.folders, key)
		}
	}
}

// syncFolders tells a running backend the net difference between the
// union of the clients' folders and what it was told: the one place the
// backend's folders change after initialize. An empty union (the last
// client leaving) changes nothing: the backend is about to stop. Called
// with mu held.
func (m *Mux) syncFolders() {
	if m.core.Phase() != mux.Running || len(m.folders) == 0 {
		return
	}
	var added, removed []folder
	for uri, ref := range m.folders {
		if !m.backendFold[uri] {
			added = append(added, folder{URI: uri, Name: ref.name})
		}
	}
	for uri := range m.backendFold {
		if m.folders[uri] == nil {
			removed = append(removed, folder{URI: uri, Name: uri[strings.LastIndexByte(uri, '/')+1:]})
		}
	}
	slices.SortFunc(added, func(a, b folder) int { return strings.Compare(a.URI, b.URI) })
	slices.SortFunc(removed, func(a, b folder) int { return strings.Compare(a.URI, b.URI) })
	m.tellFolders(added, removed)
}

// tellFolders sends workspace/didChangeWorkspaceFolders when the backend
// supports it, in every share scope (with --share=root the windows share
// a root, and a window's own folder changes still reach the backend).
// Called with mu held.
func (m *Mux) tellFolders(added, removed []folder) {
	if len(added) == 0 && len(removed) == 0 {
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
