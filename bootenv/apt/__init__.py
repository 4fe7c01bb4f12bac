"""apt for bootenv: plan a request with python-apt before anything
changes (planner.py), run it with apt-get (packages.py), and the values
both speak (model.py). python-apt is imported only by planner.py, and only
when a plan is made."""

from .model import (
    ACTIONS,
    UPGRADES,
    AptError,
    AptLocked,
    AptPlan,
    AptRequest,
    BrokenPackages,
    Change,
    HeldPackages,
    NotEnoughSpace,
    UnknownPackage,
    UpdateFailed,
    check_space,
    human,
)
from .packages import ENV_DRIVEN, AptPackages, PackageManager, default_packages

__all__ = [
    "ACTIONS",
    "UPGRADES",
    "AptError",
    "AptLocked",
    "AptPlan",
    "AptRequest",
    "BrokenPackages",
    "Change",
    "HeldPackages",
    "NotEnoughSpace",
    "UnknownPackage",
    "UpdateFailed",
    "check_space",
    "human",
    "ENV_DRIVEN",
    "AptPackages",
    "PackageManager",
    "default_packages",
]
