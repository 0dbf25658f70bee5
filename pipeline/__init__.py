"""Shared library of the build job: annotations, images, example encoding, statistics.

Plain functions, unit-tested without a Beam runner; `beam_jobs` wraps them in transforms.
"""
