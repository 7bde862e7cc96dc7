package djangodb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// ErrSnapshotFile is wrapped by every error about a snapshot file's content:
// not the format, a digest or version that does not match.
var ErrSnapshotFile = errors.New("bad snapshot file")

// SnapshotFormat names the format of snapshot files.
const SnapshotFormat = "flagproxy-snapshot/1"

// maxSnapshotFile bounds what ReadSnapshotFile reads.
const maxSnapshotFile = 256 << 20

// snapshotFile is a snapshot file: engine.Data in its JSON form, with the
// snapshot's version, when it was loaded from the database, and the
// SHA-256 of the exact bytes of "data".
type snapshotFile struct {
	Format   string          `json:"format"`
	Version  string          `json:"version,omitempty"`
	LoadedAt string          `json:"loaded_at,omitempty"`
	SHA256   string          `json:"sha256,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// WriteSnapshotFile writes snap to path atomically: a temporary file in the
// same directory, synced, then renamed over path. loadedAt is when snap was
// read from the database.
func WriteSnapshotFile(path string, snap *engine.Snapshot, loadedAt time.Time) error {
	data, err := json.Marshal(snap.Data())
	if err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	sum := sha256.Sum256(data)
	// Not indented: "data" must stay the bytes its digest was taken of.
	b, err := json.Marshal(snapshotFile{
		Format:   SnapshotFormat,
		Version:  snap.Version(),
		LoadedAt: loadedAt.UTC().Format(time.RFC3339Nano),
		SHA256:   hex.EncodeToString(sum[:]),
		Data:     data,
	})
	if err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	return writeAtomically(path, append(b, '\n'))
}

func writeAtomically(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot file: %w", err)
	}
	return nil
}

// ReadSnapshotFile reads a snapshot file and builds its snapshot. A file
// written by hand may leave out version, loaded_at and sha256, but what it
// has must match: a file whose digest or version does not match its data is
// refused whole (ErrSnapshotFile), never half-loaded. The zero time is
// returned when the file has no loaded_at.
func ReadSnapshotFile(path string) (*engine.Snapshot, time.Time, error) {
	data, loadedAt, version, err := readSnapshotData(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	snap, err := engine.NewSnapshot(data)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s: %w", ErrSnapshotFile, path, err)
	}
	if version != "" && snap.Version() != version {
		return nil, time.Time{}, fmt.Errorf("%w: %s: its data makes version %s, the file says %s (written by another flagproxy, or edited)",
			ErrSnapshotFile, path, snap.Version(), version)
	}
	return snap, loadedAt, nil
}

func readSnapshotData(path string) (engine.Data, time.Time, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("snapshot file: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSnapshotFile+1))
	if err != nil {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("snapshot file: %w", err)
	}
	if len(raw) > maxSnapshotFile {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s is larger than %d bytes", ErrSnapshotFile, path, maxSnapshotFile)
	}
	var sf snapshotFile
	if err := strictJSON(raw, &sf); err != nil {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: %w", ErrSnapshotFile, path, err)
	}
	if sf.Format != SnapshotFormat {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: format %q, want %q", ErrSnapshotFile, path, sf.Format, SnapshotFormat)
	}
	if sum := sha256.Sum256(sf.Data); sf.SHA256 != "" && sf.SHA256 != hex.EncodeToString(sum[:]) {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: the data does not match its sha256 (corrupted)", ErrSnapshotFile, path)
	}
	var at time.Time
	if sf.LoadedAt != "" {
		if at, err = time.Parse(time.RFC3339Nano, sf.LoadedAt); err != nil {
			return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: loaded_at: %w", ErrSnapshotFile, path, err)
		}
	}
	d := engine.DefaultData()
	if err := strictJSON(sf.Data, &d); err != nil {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: data: %w", ErrSnapshotFile, path, err)
	}
	if d.DjangoFlags.Location, err = time.LoadLocation(d.DjangoFlags.TimeZone); err != nil {
		return engine.Data{}, time.Time{}, "", fmt.Errorf("%w: %s: TIME_ZONE: %w", ErrSnapshotFile, path, err)
	}
	return d, at, sf.Version, nil
}

// strictJSON decodes one JSON value into v, refusing unknown members and
// anything after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// FileLoader serves flags from a snapshot file instead of a database
// (--database file:///path.json): each Load reads the file again, so an
// edit is picked up at the next poll.
type FileLoader struct {
	Path string
}

// Load reads the file's data.
func (f FileLoader) Load(context.Context) (engine.Data, error) {
	d, _, version, err := readSnapshotData(f.Path)
	if err != nil {
		return engine.Data{}, err
	}
	if version != "" {
		snap, err := engine.NewSnapshot(d)
		if err != nil || snap.Version() != version {
			return engine.Data{}, fmt.Errorf("%w: %s: version does not match its data", ErrSnapshotFile, f.Path)
		}
	}
	return d, nil
}
