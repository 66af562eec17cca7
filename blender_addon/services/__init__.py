"""The add-on's logic. Only ``scene`` and ``job`` touch ``bpy``; nothing here imports facerecon_core
at module level (it is imported when a reconstruction runs)."""
