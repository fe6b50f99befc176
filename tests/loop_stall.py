"""How long one awaited call stalls its event loop, measured in a fresh process: litellm and
the encoders must not be loaded yet, and the test session has them all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = """
import asyncio, sys, time
{setup}

async def main():
    stalls, done = [], False

    async def tick():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    t0 = time.perf_counter()
{call}
    took = time.perf_counter() - t0
    done = True
    await ticker
    assert "litellm" in sys.modules
    print("FIGURES", took, max(stalls))

asyncio.run(main())
"""


def first_call_stall(setup: str, call: str, *args: str) -> tuple[float, float]:
    """(seconds the call took, the loop's worst stall during it). `setup` runs first at
    module level; `call` is the body that awaits, with `sys.argv[1:]` holding `args`."""
    script = SCRIPT.format(setup=setup, call=textwrap.indent(textwrap.dedent(call), "    "))
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("FIGURES ")]
    took, worst_stall = map(float, line.split()[1:])
    return took, worst_stall
