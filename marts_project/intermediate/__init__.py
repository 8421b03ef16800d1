"""The intermediate layer: cross-source joins shared by several marts."""
