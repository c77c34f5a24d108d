"""The labelling package against a real Label Studio 1.x server on 127.0.0.1: a project with our
labelling config takes tasks.json, annotations are made through its API, and its JSON export
imports back through relattr_tf's importer. Slow, and skipped unless the `label-studio` command
is installed (pip install label-studio, best in a venv of its own; point LABEL_STUDIO_BIN at
it)."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from relattr_tf.labelling import label_studio, package
from tests.test_attic import _rendered_pairs

pytestmark = pytest.mark.slow
TOKEN = "relattr0123456789abcdef0123456789abcdef"


def _binary():
    path = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not path:
        pytest.skip("label-studio is not installed (pip install label-studio)")
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base, method, path, body=None):
    request = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = _binary()
    root = tmp_path_factory.mktemp("label_studio")
    port = _free_port()
    env = dict(os.environ, LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
               LOCAL_FILES_SERVING_ENABLED="true", LOCAL_FILES_DOCUMENT_ROOT=str(root),
               LABEL_STUDIO_USER_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(root / "ls_data"), "--username", "test@example.org", "--password",
         "relattr-test-pw", "--user-token", TOKEN, "--enable-legacy-api-token"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/health", timeout=5)
            break
        except OSError:
            time.sleep(2)
    else:
        proc.kill()
        pytest.fail("Label Studio did not start within 300 s")
    yield base, root
    proc.terminate()
    proc.wait(timeout=60)


def test_the_package_imports_into_label_studio_and_its_export_imports_back(server,
                                                                          tiny_data_dir,
                                                                          tmp_path):
    base, root = server
    directory = package.write_package(
        str(root / "round"), _rendered_pairs(3), (np.zeros((3, 2)), np.ones((3, 2))),
        attribute="brightness", generator_attribute="brightness",
        attribute_names=["brightness", "tilt"], prefix="r01")
    project = _api(base, "POST", "/api/projects",
                   {"title": "relattr", "label_config": label_studio.LABELING_CONFIG})
    tasks = json.load(open(os.path.join(directory, package.TASKS_FILE)))
    _api(base, "POST", f"/api/projects/{project['id']}/import", tasks)
    listed = _api(base, "GET", f"/api/tasks?project={project['id']}")
    listed = listed["tasks"] if isinstance(listed, dict) else listed
    assert len(listed) == 3
    answers = {"r01-000000": ("more", 3), "r01-000001": ("less", 2),
               "r01-000002": ("illegible", None)}
    for task in listed:
        answer, rating = answers[task["data"]["pair_id"]]
        result = label_studio.export_task(task["id"], task["data"], [
            ("", answer, None if rating is None else rating / 3)])["annotations"][0]["result"]
        _api(base, "POST", f"/api/tasks/{task['id']}/annotations", {"result": result})
    export = _api(base, "GET", f"/api/projects/{project['id']}/export?exportType=JSON")
    export_path = str(tmp_path / "export.json")
    json.dump(export, open(export_path, "w"))
    data_dir = shutil.copytree(tiny_data_dir, tmp_path / "data")
    summary = package.import_labels(export_path, directory, str(data_dir), "ls-r01")
    assert (summary["accepted"], summary["illegible"], summary["answers"]) == (2, 1, 3)
