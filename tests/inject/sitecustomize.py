"""Faults injected into every echoforge process of a test (driver and workers alike), chosen
by environment variables; put this folder on PYTHONPATH to arm it.

- ECHOFORGE_TEST_SLOW_COMMIT=S: sleep S seconds after each work unit commit.
- ECHOFORGE_TEST_FAIL=raise|crash: synthesis of input row 1 raises, or kills its process.
- ECHOFORGE_TEST_CRASH_AT=seal: the process dies right after a sealed shard is written,
  before its seal marker.
"""

import os

if any(k.startswith("ECHOFORGE_TEST_") for k in os.environ):
    import time

    if os.environ.get("ECHOFORGE_TEST_SLOW_COMMIT"):
        import echoforge.pipeline.job as _job

        _commit = _job.commit_unit

        def _slow_commit(*args, **kwargs):
            entry = _commit(*args, **kwargs)
            time.sleep(float(os.environ["ECHOFORGE_TEST_SLOW_COMMIT"]))
            return entry

        _job.commit_unit = _slow_commit

    if os.environ.get("ECHOFORGE_TEST_FAIL"):
        from echoforge.transforms.synthesize import Synthesize

        _process = Synthesize.process

        def _failing(self, batch):
            if any(r.input_row == 1 for r in batch):
                if os.environ["ECHOFORGE_TEST_FAIL"] == "crash":
                    os._exit(3)
                raise RuntimeError("synthesiser exploded")
            return _process(self, batch)

        Synthesize.process = _failing

    if os.environ.get("ECHOFORGE_TEST_CRASH_AT") == "seal":
        from echoforge.storage import DataFolder

        _write_json = DataFolder.write_json

        def _crashing(self, rel, obj):
            if rel.startswith("_echoforge/shards/") and obj.get("path"):
                os._exit(9)
            return _write_json(self, rel, obj)

        DataFolder.write_json = _crashing
