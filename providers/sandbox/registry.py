"""The emulators the sandbox serves, one per provider kind (prefix = kind)."""

from providers.sandbox.kapture import KaptureEmulator

EMULATORS = [KaptureEmulator]
