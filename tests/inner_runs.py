"""What the suite's inner pytest runs leave out.

The dev environment has pytest plugins for reasons of its own: langsmith's comes with
langchain-core (a client under test), hypothesis's with the fuzz tests. Neither is a subject of
any inner run, and each run in a process of its own (``runpytest_subprocess``, an xdist
worker, the kill tests' runs) would import them for nothing: about 2 s of a 3 s start on these
2 cores. pytest-asyncio is left out too (its unset-loop-scope warning is not ours); a test
that wants it passes ``-p asyncio``. The install side-effect tests, which compare a user's
suite with and without us, set their own options and keep every plugin.
"""

from __future__ import annotations

LEFT_OUT = ("-p", "no:asyncio", "-p", "no:langsmith_plugin", "-p", "no:hypothesispytest")
