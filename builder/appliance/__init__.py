"""Building the engine appliance disk: one interface, several backends."""
