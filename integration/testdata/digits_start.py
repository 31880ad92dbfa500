"""Start DIGITS' scheduler on a jobs directory, list its jobs, delete some.

Usage (Python 2.7 or 3):

    PYTHONPATH=../../digits/testdata/digitsstub python3 digits_start.py JOBS_DIR [ID_TO_DELETE...]

With the stand-in digits.scheduler.Scheduler (which mirrors DIGITS':
load_past_jobs keys jobs by the pickled _id and re-saves every job it
loads; delete_job calls str() on the id), it prints one line per job DIGITS
would show, sorted by id:

    JOB <id> <folder> <name>

then "FAILED <folder>: <error>" per folder that did not load, then for each
ID given (passed as unicode text, as Flask passes URL parts under Python 2)
"DELETED <id>", "NOTFOUND <id>" or "DELETE-ERROR <id>: <exception type>".
Exits 0 unless the usage is wrong.
"""
from __future__ import print_function

import sys

sys.dont_write_bytecode = True  # keep the stubs' testdata clean

import os  # noqa: E402

PY2 = sys.version_info[0] == 2


def out(line):
    if PY2:
        if isinstance(line, unicode):  # noqa: F821
            line = line.encode('utf-8')
        sys.stdout.write(line + '\n')
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write((line + '\n').encode('utf-8'))
    sys.stdout.flush()


def text(s):
    if PY2 and isinstance(s, str):
        return s.decode('utf-8', 'replace')
    return s


def main(argv):
    if len(argv) < 2:
        sys.stderr.write('usage: %s JOBS_DIR [ID...]\n' % argv[0])
        return 2
    from digits.scheduler import Scheduler
    import digits.pretrained_model.tasks  # noqa: F401

    jobs_dir = argv[1]
    sched = Scheduler(jobs_dir)
    failed = sched.load_past_jobs()
    for job_id in sorted(sched.jobs):
        job = sched.jobs[job_id]
        out(u'JOB %s %s %s' % (text(job_id), text(os.path.basename(job.dir())), text(job.name())))
    for dir_name, e in failed:
        out(u'FAILED %s: %s: %s' % (text(dir_name), type(e).__name__, text(str(e))))
    for arg in argv[2:]:
        job_id = text(arg)  # unicode, as Flask gives it
        try:
            ok = sched.delete_job(job_id)
            out(u'%s %s' % ('DELETED' if ok else 'NOTFOUND', job_id))
        except Exception as e:
            out(u'DELETE-ERROR %s: %s' % (job_id, type(e).__name__))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
