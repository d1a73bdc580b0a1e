"""The ``web`` process: the vendor's callback receiver (``POST /AR/V1/av``) and ``/healthz``.

Run it with ``gunicorn -b 0.0.0.0:$PORT worker.web.app:app``.
"""
