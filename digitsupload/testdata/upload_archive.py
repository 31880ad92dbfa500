# Re-enacts, with Python's own tarfile and json, what DIGITS 6 does with an
# uploaded archive (digits/pretrained_model/views.py::upload_archive, then
# the framework's upload task): prints the job files it would copy, with
# their sha256, as JSON; exits 1 with DIGITS' reason where DIGITS refuses.
# Runs under Python 2.7 (DIGITS' own) and 3. Usage: upload_archive.py TAR
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile


def fail(reason):
    sys.stdout.write(json.dumps({"status": reason}))
    sys.exit(1)


def main(path):
    if not tarfile.is_tarfile(path):
        fail("Incorrect Archive Type")
    archive = tarfile.open(path, 'r')
    names = archive.getnames()
    if "info.json" not in names:
        fail("Missing or Incorrect json file")
    tempdir = tempfile.mkdtemp()
    try:
        archive.extractall(path=tempdir)
        with open(os.path.join(tempdir, "info.json")) as f:
            info = json.load(f)
        for key in ["snapshot file", "framework", "name"]:
            if key not in info:
                fail("Missing Key '" + key + "' in info.json")
        weights = os.path.join(tempdir, info["snapshot file"])
        if "model file" in info:
            model = os.path.join(tempdir, info["model file"])
        elif "network file" in info:
            model = os.path.join(tempdir, info["network file"])
        else:
            fail("Missing model definition in info.json")
        labels = os.path.join(tempdir, info["labels file"]) if "labels file" in info else None
        fw = info["framework"]
        if fw == "caffe":
            moves = [(weights, "model.caffemodel"), (model, "original.prototxt")]
            layer = os.path.join(os.path.dirname(weights), "digits_python_layers.py")
            if os.path.exists(layer):
                moves.append((layer, "digits_python_layers.py"))
            elif os.path.exists(layer + "c"):
                moves.append((layer + "c", "digits_python_layers.pyc"))
        elif fw == "torch":
            moves = [(weights, "_Model.t7"), (model, "original.lua")]
        elif fw == "tensorflow":
            moves = [(weights + s, "snapshot.ckpt" + s) for s in (".data-00000-of-00001", ".index", ".meta")]
            moves.append((model, "network.py"))
        else:
            fail("framework %r is not supported" % fw)
        if labels is not None:
            moves.append((labels, "labels.txt"))
        files = {}
        for src, dst in moves:
            if not os.path.isfile(src):
                files[dst] = "MISSING"
                continue
            with open(src, "rb") as f:
                files[dst] = hashlib.sha256(f.read()).hexdigest()
        sys.stdout.write(json.dumps({"names": names, "name": info["name"], "framework": fw, "files": files}))
    finally:
        shutil.rmtree(tempdir)


main(sys.argv[1])
