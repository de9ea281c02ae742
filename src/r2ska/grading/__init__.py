"""Grading of submitted homework notebooks: a sandboxed runner and the grading command.

Import from the submodules (``r2ska.grading.sandbox``, ``r2ska.grading.grade``). This file
imports nothing, because the sandbox worker runs as ``python -m r2ska.grading._worker``
and must still be single-threaded when it enters a new user namespace, which numpy
(started by the submodules) prevents.
"""
