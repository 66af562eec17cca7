"""Face from video (``facerecon track``): one identity from all frames, the performance as ARKit keyframes.

``reader`` streams the frames, ``track`` follows the face and reconstructs each frame, ``smooth`` filters the
weights and the pose over time (One Euro), ``livelink`` reads and writes Live Link Face's CSV, ``write`` the
outputs (CSV, animated GLB, NPZ).
"""
