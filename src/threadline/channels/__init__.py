"""Messaging channels (SMS through Twilio, WhatsApp through the Cloud API): one folder per provider
(``twilio/``, ``whatsapp/``: ``client.py``, ``sender.py``, ``inbound.py``), found by channel type in
``registry.py``; what they share (``sender.py``, the ``ChannelSender`` protocol; ``client.py``, ``errors.py``,
``segments.py``); the send job's lifecycle (``outbox.py``, ``delivery.py``), the webhooks' shared steps
(``inbound.py``), their SQL (``repository.py``) and routes (``endpoints.py``). See docs/channels.md."""
