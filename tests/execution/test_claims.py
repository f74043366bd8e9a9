"""Cell claims: a live holder blocks others; a holder killed with SIGKILL frees the claim at once."""

import signal
import subprocess
import sys

from tlbench.execution import claims

HOLD = """
import sys, time
from tlbench.execution import claims
claim = claims.try_claim(sys.argv[1])
print("held" if claim else "busy", flush=True)
time.sleep(60)
"""


def test_claim_is_exclusive_and_dies_with_its_holder(tmp_path):
    path = tmp_path / "cell" / ".claim"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert claims.try_claim(path) is None
        info = claims.holder(path)
        assert info["pid"] == holder.pid and info["host"]
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert claims.left_behind(path)  # the file says a cell was in flight; nobody holds it
        claim = claims.try_claim(path)
        assert claim is not None and claims.holder(path)["pid"] != holder.pid
        claim.release()
        assert not path.exists() and not claims.left_behind(path)
    finally:
        holder.kill()
        holder.wait()


def test_released_claim_can_be_taken_again_while_a_waiter_retries(tmp_path):
    path = tmp_path / ".lock"
    first = claims.try_claim(path)
    assert claims.try_claim(path) is None
    first.release()  # unlinks the file: a later claimer must lock the new file, not the orphan inode
    second = claims.wait_claim(path)
    assert claims.try_claim(path) is None
    second.release(remove=False)
    assert path.exists() and claims.holder(path) is None


def test_the_executor_keys_are_the_executor_settings_fields():
    """The grid accepts exactly the keys ExecutorSettings holds: one list, not three."""
    import dataclasses

    from tlbench.execution.contract import ExecutorSettings
    from tlbench.grid.spec import EXECUTOR_KEYS, SCALAR_KEYS

    assert tuple(f.name for f in dataclasses.fields(ExecutorSettings)) == EXECUTOR_KEYS
    assert set(EXECUTOR_KEYS) <= set(SCALAR_KEYS)
