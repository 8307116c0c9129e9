"""The source registry: one recipe module and one default config (``configs/<source>.yaml``) per source."""
