# Stand-in for the parts of digits/scheduler.py (DIGITS 5.x/6.x) that decide
# which copied job folders DIGITS shows and how it deletes them.
from __future__ import absolute_import

import os
import shutil
import sys
from collections import OrderedDict

from .job import Job
from .pretrained_model.job import PretrainedModelJob
from .status import Status

PY2 = sys.version_info[0] == 2
if PY2:
    text_types = (str, unicode)  # noqa: F821
else:
    text_types = (str,)


class Scheduler(object):
    """
    Three facts of DIGITS's Scheduler the stand-in mirrors:

      - load_past_jobs lists the jobs directory (sorted), calls Job.load for
        each folder (which sets job._dir from the folder) and saves the job
        again at once; then jobs are keyed by the *pickled* id,
        self.jobs[job.id()], so two folders with the same _id hide each
        other and only one is shown;
      - a folder whose name is already a key of self.jobs is skipped;
      - delete_job turns the id it is given into str(job_id): under
        Python 2 a non-ASCII unicode id raises UnicodeEncodeError there (the
        web UI answers HTTP 500). Under Python 3 the stand-in raises the same
        error, so the tests mean the same on either interpreter.
    """

    def __init__(self, jobs_dir):
        self.jobs_dir = jobs_dir
        self.jobs = OrderedDict()

    def load_past_jobs(self):
        loaded_jobs = []
        failed_jobs = []
        for dir_name in sorted(os.listdir(self.jobs_dir)):
            if os.path.isdir(os.path.join(self.jobs_dir, dir_name)):
                # Make sure it hasn't already been loaded
                if dir_name in self.jobs:
                    continue
                try:
                    job = Job.load(self.jobs_dir, dir_name)
                    # The server might have crashed
                    if job.status.is_running():
                        job.status = Status.ABORT
                    for task in job.tasks:
                        if task.status.is_running():
                            task.status = Status.ABORT
                    # We might have changed some attributes here or in __setstate__
                    job.save()
                    loaded_jobs.append(job)
                except Exception as e:
                    failed_jobs.append((dir_name, e))
        # add DatasetJobs or PretrainedModelJobs
        for job in loaded_jobs:
            if isinstance(job, PretrainedModelJob):
                self.jobs[job.id()] = job
        return failed_jobs

    def get_job(self, job_id):
        if job_id is None:
            return None
        return self.jobs.get(job_id, None)

    def delete_job(self, job):
        """
        Deletes an entire job folder from disk.
        Returns True if the Job was found and deleted.
        """
        if isinstance(job, text_types):
            job_id = str(job)
            if not PY2:
                job_id.encode('ascii')  # Python 2's str(): UnicodeEncodeError
        elif isinstance(job, Job):
            job_id = job.id()
        else:
            raise ValueError('called delete_job with a %s' % type(job))
        job = self.jobs.get(job_id, None)
        if job:
            self.jobs.pop(job_id, None)
            if os.path.exists(job.dir()):
                shutil.rmtree(job.dir())
            return True
        return False
