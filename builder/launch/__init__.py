"""he-launch: boot the appliance with its seed and return engine-setup's exit status."""
