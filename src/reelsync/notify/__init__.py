"""reelsync.notify: what the control plane tells people when jobs move.

- :mod:`~reelsync.notify.mailer`: the ``Mailer`` port (SMTP on aiosmtplib, in-memory twin).
- :mod:`~reelsync.notify.summary`: the one summary e-mail per finished job.
- :mod:`~reelsync.notify.webhook`: signed JSON webhooks (sender, in-memory twin, receiver check).
- :mod:`~reelsync.notify.hooks`: admin commands run at pre-submit, post-done and post-failed;
  :mod:`~reelsync.notify.presubmit` is the services' ``SubmitHook``.
- :mod:`~reelsync.notify.recipients`: who gets a job's mail (settings, opt-out).
- :mod:`~reelsync.notify.outbox`: job events written as outbox rows in the caller's transaction;
  :mod:`~reelsync.notify.capture` does it for every ORM change of a job's status.
- :mod:`~reelsync.notify.dispatcher`: claims, sends, retries and marks outbox rows;
  :mod:`~reelsync.notify.service`: the ``Notifier`` a server process starts.
"""
