# Stand-in for the DIGITS package, for tests only. Only the modules that a
# status.pickle of a Pretrained Model job refers to are provided; they
# mirror the attributes and pickling behaviour of DIGITS 5.x/6.x
# (digits/status.py, job.py, task.py, pretrained_model/...) without Flask,
# gevent or a server. They run on Python 2.7 and Python 3.
