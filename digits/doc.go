// Package digits knows the DIGITS side of a model store: the info.json keys,
// the Pretrained Model job layout per framework and the status.pickle bytes.
//
// The facts it encodes come from the reference notes
// (shared/reference/digits-model-store.md, sections 2, 3 and 6):
//
//   - ParseInfo and ParseAux read a store model's info.json and aux.json.
//     They never panic on hostile input; what is missing or wrong comes back
//     as typed problems (*Problem, in a Problems error: matched with
//     errors.As or ProblemsOf, never by parsing messages), blockers wrapping
//     ErrNotImportable, while the fields that could be read are still
//     returned for listing.
//   - Wanted and Judge are the one verdict on a model: given what the store
//     answered (info.json, aux.json, presence and size of every file they
//     name), Judge returns the folder, the problems and whether DIGITS can
//     import it. The mount, ls, check and import all follow it.
//   - JobIDSuffixes and JobID give every configured model an ASCII job id in
//     DIGITS' shape, stable across mounts and machines, unique across
//     stores (DIGITS keys jobs by the pickled id, not the folder name).
//   - Layout maps a model's remote files to the file names a DIGITS upload
//     task gives them in a job directory (model.caffemodel, original.prototxt,
//     ...). Every remote name is checked with SafeRelName first.
//   - NewJob and StatusPickle synthesize the job's status.pickle: pickle
//     protocol 2, loadable by Python 2.7 (pickle and cPickle) and Python 3.
//     The old-style digits.status.Status instances are built with
//     MARK GLOBAL OBJ + state + BUILD, never NEWOBJ. The output is a pure
//     function of the Job, so the same store content gives the same bytes.
//
// Remote names accepted by SafeRelName are single path segments, but they
// may still contain characters that are special in URLs ('%', '?', '#', ' ').
// Callers must escape them (url.PathEscape) when building a request URL, so
// that a file literally named "%2e%2e" is fetched as "%252e%252e" and never
// reaches the server as "..".
package digits
