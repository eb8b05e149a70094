"""reelsync.notify: what the control plane tells people when jobs move.

- :mod:`~reelsync.notify.mailer`: the ``Mailer`` port (SMTP on aiosmtplib, in-memory twin).
- :mod:`~reelsync.notify.summary`: the one summary e-mail per finished job.
- :mod:`~reelsync.notify.webhook`: signed JSON webhooks (sender, in-memory twin, receiver check).
- :mod:`~reelsync.notify.hooks`: admin commands run at pre-submit, post-done and post-failed.
"""
