package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestStatus: modelstorefs status lists a live mount with its daemon's
// pid, cache dir, stores (without the password) and health, and then the
// same mount dead once its daemon is killed.
func TestStatus(t *testing.T) {
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	withPassword := strings.Replace(s.Base, "http://", "http://alice:s3cret-pw@", 1)
	mnt, cacheDir := t.TempDir(), t.TempDir()
	m := itest.MountWith(t, itest.Binary, mnt, cacheDir, []string{"team=" + withPassword})
	itest.ListDir(t, mnt+"/team") // listed: the store shows its models

	find := func() (mountStatus, string) {
		t.Helper()
		out, code := runExit(t, nil, "status", "--json")
		if code != 0 {
			t.Fatalf("status --json: exit %d\n%s", code, out)
		}
		var all []mountStatus
		if err := json.Unmarshal([]byte(out), &all); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		for _, ms := range all {
			if ms.Mountpoint == mnt {
				return ms, out
			}
		}
		t.Fatalf("status --json does not list %s:\n%s", mnt, out)
		return mountStatus{}, ""
	}
	ms, js := find()
	if ms.PID != m.Cmd.Process.Pid || ms.CacheDir != cacheDir || ms.Health != "ok" || len(ms.Stores) != 1 ||
		ms.Stores[0].Name != "team" || ms.Stores[0].URL != s.Base || ms.Stores[0].Models != 4 {
		t.Errorf("status of a live mount: %+v", ms)
	}
	text, code := runExit(t, nil, "status")
	if code != 0 || !strings.Contains(text, mnt+"\n  daemon:  pid ") || !strings.Contains(text, "  health:  ok\n") {
		t.Errorf("status: exit %d\n%s", code, text)
	}
	if strings.Contains(js+text, "s3cret") {
		t.Errorf("status shows the password:\n%s\n%s", js, text)
	}

	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if ms, _ := find(); !strings.HasPrefix(ms.Health, "dead") || ms.PID != 0 {
		t.Errorf("status of a dead mount: %+v", ms)
	}
	if out, code := runExit(t, nil, "unmount", mnt); code != 0 {
		t.Errorf("unmount of the dead mount: exit %d %s", code, out)
	}
}

// mountStatus is what status --json says of a mount.
type mountStatus struct {
	Mountpoint string
	PID        int
	CacheDir   string `json:"cache_dir"`
	Health     string
	Stores     []struct {
		Name, URL string
		Models    int
	}
}
