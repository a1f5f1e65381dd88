"""eventsnn: ANN-to-SNN conversion with burst spikes and LIPooling, simulated event by event."""

__version__ = "0.1.0"
