"""Credentials from the config stay put: never printed, never in a file a build writes, never
in a log, never in the pickled job (workers read them again from the config file)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from echoforge.config import load_config
from echoforge.pipeline.job import Job
from echoforge.pipeline.layout import Layout, ShardPlan
from echoforge.pipeline.workunits import plan_work_units
from echoforge.storage import folder as open_folder

from conftest import SHAREGPT, write_config

AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def test_credentials_from_the_config_go_nowhere(s3_server, tmp_path, cache_env):
    from s3_server import ACCESS_KEY, SECRET_KEY  # (the access key is also the bucket's name: not a secret)

    config_path = write_config(tmp_path / "c.yaml", {
        "run": {"work_unit_rows": 1, "workers": 2}, "gate": {"asr": "none"},
        "storage": {"s3": {"key": ACCESS_KEY, "secret": SECRET_KEY,
                           "client_kwargs": {"endpoint_url": s3_server.endpoint}}}})
    config = load_config(config_path)
    out = s3_server.url("secret")
    assert SECRET_KEY not in repr(config) and SECRET_KEY not in str(config.model_dump(mode="json"))
    options = config.storage.options()
    folder = open_folder(out, options)
    assert SECRET_KEY not in repr(folder) and SECRET_KEY not in repr(options)
    assert options["s3"]["secret"] == SECRET_KEY  # what the filesystem is given

    # The pickled job carries no secret; where it is unpickled, the config file supplies it.
    plan = plan_work_units([str(SHAREGPT)], 1, 2, options=options)
    job = Job(config, plan, Layout(folder, ShardPlan.of(len(plan.units), 1, config.output, False), "parquet"))
    blob = pickle.dumps(job)
    assert SECRET_KEY.encode() not in blob
    assert pickle.loads(blob).layout.folder.options["s3"]["secret"] == SECRET_KEY

    # A build by worker processes (which must find the credentials themselves), with logs on.
    env = {k: v for k, v in os.environ.items() if k not in AWS}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    r = subprocess.run([sys.executable, "-m", "echoforge", "-v", "build", str(SHAREGPT), "-o", out, "--limit", "3",
                        "--config", str(config_path)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r2 = subprocess.run([sys.executable, "-m", "echoforge", "inspect", out, "--json"], capture_output=True,
                        text=True, timeout=600, env={**env, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                                                     "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                                                     "AWS_ENDPOINT_URL": s3_server.endpoint})
    assert r2.returncode == 0, r2.stderr[-3000:]
    for text in (r.stdout, r.stderr, r2.stdout):
        assert SECRET_KEY not in text
    fs = s3_server.filesystem()
    written = fs.find(out.removeprefix("s3://"))
    assert any(p.endswith("manifest.json") for p in written) and any(p.endswith("README.md") for p in written)
    for p in written:
        data = fs.cat_file(p)
        assert SECRET_KEY.encode() not in data, p


def test_ids_become_file_names_that_stay_in_their_folder():
    from echoforge.commands.decode_units import wav_name
    from echoforge.storage import safe_name

    names = [safe_name(x) for x in ("../../etc/passwd", "a/b", "..", ".hidden", "x" * 400, "a b", "a_b", "ok-1.2")]
    assert all("/" not in n and not n.startswith(".") and len(n) <= 160 for n in names)
    assert len(set(names)) == len(names)  # "a b" and "a_b" do not collide
    assert safe_name("ok-1.2") == "ok-1.2" and wav_name("../x") .endswith(".wav") and "/" not in wav_name("../x")
