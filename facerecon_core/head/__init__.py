"""The whole head around a reconstructed face (``mesh="head"``): the ICT Face Model's head, eyes and teeth.

``register`` builds the :class:`~facerecon_core.head.rig.HeadRig` once (``facerecon assets head``, scipy);
``shape``, ``texture`` and ``build`` make a :class:`~facerecon_core.head.mesh.HeadMesh` per face with numpy alone.
"""
