"""The emulators the sandbox serves, one per provider kind (prefix = kind)."""

from providers.sandbox.kapture import KaptureEmulator
from providers.sandbox.keliweb import KeliwebEmulator
from providers.sandbox.knight import KnightEmulator
from providers.sandbox.motadata import MotadataEmulator
from providers.sandbox.particlespace import ParticleSpaceEmulator

EMULATORS = [KaptureEmulator, ParticleSpaceEmulator, KnightEmulator, MotadataEmulator, KeliwebEmulator]
