"""Site sync: the seed workflow as a function (see reelsync.sync.site_sync)."""
