"""``python tests/compat/llama_server.py ARGS`` runs ``python -m llama_cpp.server ARGS``: llama-cpp-python's own
OpenAI-compatible server, unchanged, except that the model is loaded the way threadline's ``local`` provider loads
it, without llama.cpp's "extra buffer types" (with them llama-cpp-python 0.3.36 crashes on AVX-512/AMX CPUs at
the first prompt; see ``threadline.engines.providers.local``). Where that setting does not exist, nothing changes.
"""

from __future__ import annotations

import runpy

import llama_cpp

from threadline.engines.providers.local import _without_extra_buffers

if __name__ == "__main__":
    with _without_extra_buffers(llama_cpp):  # held for the life of this process, which only serves
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
