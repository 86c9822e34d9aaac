"""The terminal: how the ``threadline`` command shows things to people and scripts (``output``), and
``threadline chat``, a chat with an agent over a running server's ``/v1`` API (``client``, ``chat``).

A surface: it talks to the server over HTTP only and imports nothing of the server's own."""
