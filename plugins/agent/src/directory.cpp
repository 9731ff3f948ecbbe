// placeholder: written by the agent helpers
