"""Load copied DIGITS Pretrained Model jobs the way DIGITS does at start-up.

Usage (Python 2.7 or 3):

    PYTHONPATH=../../digits/testdata/digitsstub python3 load_jobs.py JOBS_DIR

Like DIGITS's Scheduler.load_past_jobs, it walks sorted(os.listdir(JOBS_DIR))
and loads every directory's status.pickle with Job.load (from the stand-in
digits modules on PYTHONPATH). It then checks what DIGITS needs to list the
job under Pretrained Models, in state Done, usable from New Model ->
Pretrained Networks:

  - the job and its task are Done and not running,
  - _id is ASCII text (DIGITS' delete_job calls str() on it) and equals
    the task's job_id; the directory may have any name (Job.load sets the
    job's directory from it), but no two directories may hold the same _id
    (DIGITS keys jobs by _id: one would hide the other),
  - framework is lowercase caffe, torch or tensorflow and the task class
    is that framework's upload task,
  - the weights and model-definition files DIGITS opens for that framework
    exist in the directory and are not empty,
  - labels.txt exists exactly when the task's labels_path is not None,
  - the job can be saved again (DIGITS's job.save() right after loading).

One line per directory: "OK <dir> <framework> <name> <TaskClass>",
"FAIL <dir>: <reason>" or "SKIP <dir>: skipped (no status.pickle)".
Exits 1 if any directory failed, 2 on bad usage.
"""
from __future__ import print_function

import sys

sys.dont_write_bytecode = True  # keep the stubs' testdata clean

import os  # noqa: E402
import pickle  # noqa: E402
import traceback  # noqa: E402

PY2 = sys.version_info[0] == 2
if PY2:
    text_types = (str, unicode)  # noqa: F821
else:
    text_types = (str,)

# The files each framework's upload task leaves in the job directory and
# that DIGITS opens later (get_weights_path, get_model_def_path; reference
# section 3).
FRAMEWORKS = {
    'caffe': ('CaffeUploadTask', 'digits.pretrained_model.tasks.caffe_upload',
              ['model.caffemodel', 'original.prototxt']),
    'torch': ('TorchUploadTask', 'digits.pretrained_model.tasks.torch_upload',
              ['_Model.t7', 'original.lua']),
    'tensorflow': ('TensorflowUploadTask', 'digits.pretrained_model.tasks.tensorflow_upload',
                   ['snapshot.ckpt.data-00000-of-00001', 'snapshot.ckpt.index',
                    'snapshot.ckpt.meta', 'network.py']),
}


def out(line):
    """Print one line as UTF-8, whatever the locale and Python version."""
    if PY2:
        if isinstance(line, unicode):  # noqa: F821
            line = line.encode('utf-8')
        sys.stdout.write(line + '\n')
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write((line + '\n').encode('utf-8'))
    sys.stdout.flush()


def text(s):
    """Python 2: directory names are bytes; make them unicode for output."""
    if PY2 and isinstance(s, str):
        return s.decode('utf-8', 'replace')
    return s


class CheckError(Exception):
    pass


def check(cond, fmt, *args):
    if not cond:
        raise CheckError(fmt % args)


def check_history(what, obj):
    h = getattr(obj, 'status_history', None)
    check(isinstance(h, list) and len(h) > 0, '%s status_history is empty or missing: %r', what, h)
    for entry in h:
        check(isinstance(entry, tuple) and len(entry) == 2, '%s status_history entry %r is not a pair', what, entry)
        check(type(entry[1]) is float, '%s status_history time %r is not a float', what, entry[1])
    status = h[-1][0]
    check(hasattr(status, 'val') and hasattr(status, 'is_running'),
          '%s last status %r is not a digits.status.Status', what, status)
    check(status.val == 'D', '%s status is %r (%s), want Done', what, status.val, getattr(status, 'name', '?'))
    check(not status.is_running(), '%s is running', what)
    check(obj.status.name == 'Done', '%s status name %r', what, obj.status.name)


def check_job(jobs_dir, dir_name):
    from digits.job import Job
    from digits.pretrained_model.job import PretrainedModelJob

    job_dir = os.path.join(jobs_dir, dir_name)
    job = Job.load(jobs_dir, dir_name)
    check(type(job) is PretrainedModelJob, 'job is a %s, want PretrainedModelJob',
          type(job).__module__ + '.' + type(job).__name__)
    check_history('job', job)
    check(isinstance(job.id(), text_types) and job.id(), '_id %r is not text', job.id())
    try:
        job.id().encode('ascii')
    except UnicodeError:
        raise CheckError('_id %r is not ASCII: DIGITS could not delete the job' % (job.id(),))
    check(job.dir() == job_dir, 'job.dir() %r is not the folder %r', job.dir(), job_dir)
    check(isinstance(job.name(), text_types) and job.name(), '_name %r', job.name())

    fw = job.framework
    check(isinstance(fw, text_types), 'framework %r is not text', fw)
    check(fw == fw.lower(), 'framework %r is not lowercase', fw)
    check(fw in FRAMEWORKS, 'framework %r is not caffe, torch or tensorflow', fw)
    cls_name, cls_module, files = FRAMEWORKS[fw]

    check(isinstance(job.tasks, list) and len(job.tasks) == 1, 'tasks %r, want one task', job.tasks)
    task = job.tasks[0]
    got_cls = type(task).__module__ + '.' + type(task).__name__
    check(got_cls == cls_module + '.' + cls_name, 'task class %s, want %s.%s for %s', got_cls, cls_module, cls_name, fw)
    check_history('task', task)
    check(task.job_id == job.id(), 'task job_id %r differs from _id %r', task.job_id, job.id())
    check(type(task.progress) is float and task.progress == 1.0, 'task progress %r', task.progress)
    check(job.get_progress() == 1.0, 'job progress %r', job.get_progress())
    check(job.image_info is task.image_info, 'job and task image_info are not the same object')
    for k in ('image_type', 'resize_mode', 'width', 'height'):
        check(k in job.image_info, 'image_info lacks %r: %r', k, job.image_info)

    for name in files:
        p = os.path.join(job_dir, name)
        check(os.path.isfile(p), '%s (%s weights/model definition) is missing', name, fw)
        check(os.path.getsize(p) > 0, '%s is empty', name)
    # The paths DIGITS derives from the (reset) job_dir.
    model_def = job.get_model_def_path()
    check(os.path.isfile(model_def), 'get_model_def_path() %s is not a file', model_def)
    weights = job.get_weights_path()
    if fw == 'tensorflow':
        check(os.path.isfile(weights + '.index'), 'get_weights_path() %s is not a checkpoint prefix', weights)
    else:
        check(os.path.isfile(weights), 'get_weights_path() %s is not a file', weights)

    labels = os.path.join(job_dir, 'labels.txt')
    if task.labels_path is None:
        check(not os.path.exists(labels), 'labels.txt exists but labels_path is None')
    else:
        check(os.path.isfile(labels), 'labels_path is %r but labels.txt is missing', task.labels_path)
    check(job.has_labels_file() == (task.labels_path is not None), 'has_labels_file() disagrees with labels_path')

    # load_past_jobs saves every loaded job at once; __getstate__ must find
    # all seven keys, and the saved job must load again.
    again = pickle.loads(job.save_bytes())
    check(again.id() == job.id() and again.status.name == 'Done' and again.tasks[0].status.name == 'Done',
          're-saved job does not load back the same')

    return job.id(), u'OK %s %s %s %s' % (text(dir_name), text(fw), text(job.name()), type(task).__name__)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: %s JOBS_DIR\n' % argv[0])
        return 2
    jobs_dir = argv[1]
    try:
        import digits.pretrained_model.tasks  # noqa: F401
    except ImportError as e:
        sys.stderr.write('cannot import the digits stand-in modules (%s); '
                         'put digits/testdata/digitsstub on PYTHONPATH\n' % e)
        return 2
    failed = 0
    ids = {}
    for dir_name in sorted(os.listdir(jobs_dir)):
        if not os.path.isdir(os.path.join(jobs_dir, dir_name)):
            continue
        if not os.path.isfile(os.path.join(jobs_dir, dir_name, 'status.pickle')):
            out(u'SKIP %s: skipped (no status.pickle)' % text(dir_name))
            continue
        try:
            job_id, line = check_job(jobs_dir, dir_name)
            if job_id in ids:
                raise CheckError('_id %r is also the _id of %s: DIGITS would show only one of them'
                                 % (job_id, text(ids[job_id])))
            ids[job_id] = dir_name
        except CheckError as e:
            failed += 1
            line = u'FAIL %s: %s' % (text(dir_name), text(str(e)))
        except Exception as e:
            failed += 1
            tb = traceback.format_exc().strip().splitlines()
            where = tb[-3].strip() if len(tb) >= 3 else ''
            line = u'FAIL %s: %s: %s (%s)' % (text(dir_name), type(e).__name__, text(str(e)), text(where))
        out(line)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
