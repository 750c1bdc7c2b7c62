"""Helpers of the camera and first-frame benchmarks (run_camera.py,
run_first_frame.py): viewers that time their first decoded picture, a VP8
publisher that can answer keyframe requests, and the results pages."""
