// Package digitsupload imports a store model into a running DIGITS through
// its own door, POST /pretrained_models/upload_archive, instead of a copy
// into the jobs directory that DIGITS only sees at its next start (a start
// that marks every running job as aborted).
//
// The archive is a tar of the model's DIGITS files: info.json at the root,
// rewritten to name the files as the archive holds them (the job names, a
// lower-case framework, a TensorFlow checkpoint as its prefix with the
// three parts beside it, a Caffe python layer as digits_python_layers.py),
// and those files read through the content cache. Nothing is copied to
// disk first: tar sizes follow from the file sizes, so the length of the
// whole multipart body is computed before the first byte is sent and the
// body streams with that Content-Length (DIGITS' gevent server reads a
// chunked body as empty).
//
// DIGITS answers once the job has finished, but its 200 does not say the
// job is Done, nor which job it is: the job is found in
// /completed_jobs.json, as the one new Pretrained Model of that name and
// user, and reported with the status DIGITS lists for it.
package digitsupload
