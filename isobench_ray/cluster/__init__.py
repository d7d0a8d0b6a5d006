"""The Ray layer, and the only package that imports Ray: it schedules the stages; the stages know nothing of it."""

from isobench_ray.cluster.driver import Driver, connect

__all__ = ["Driver", "connect"]
