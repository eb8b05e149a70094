"""The control plane's business rules, one copy, used by the native REST API and the accsyn v3
adapter alike. Each module owns one entity; every public function takes the :class:`Database`
and the calling :class:`~reelsync.domain.records.Actor`, checks roles and ACLs itself, runs in one
transaction, and returns frozen records from :mod:`reelsync.domain.records`."""
