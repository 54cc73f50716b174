"""Drives `medclipseg serve` with the real MONAI Label client (PyPI `monailabel`, client module).

Usage: python monailabel_client.py SERVER_URL IMAGE_PATH TMP_DIR
Prints one JSON line: the info, the upload reply, the returned label file and params.
"""
import json
import sys

from monailabel.client import MONAILabelClient

url, image_path, tmp = sys.argv[1:4]
client = MONAILabelClient(url, tmpdir=tmp)

info = client.info()
model_name = next(iter(info["models"]))
model = info["models"][model_name]

# Slicer names an upload after its volume node, e.g. "6: CT Series".
uploaded = client.upload_image(image_path, image_id="6: CT Series")

# What Slicer sends: the model's config options, edited, plus its own result settings.
params = dict(model["config"])
params["samples"] = 2
params["result_extension"] = ".nrrd"
params["result_dtype"] = "uint8"
label_file, result = client.infer(model_name, "6: CT Series", params)

training = client.train_status(check_if_running=True)

print(json.dumps({
    "info": info,
    "model": model_name,
    "uploaded": uploaded,
    "label_file": label_file,
    "params": result,
    "training": training,
}))
