"""What the agent and the gateway share: wire formats, the typed YAML loader and sd_notify.

Both ``agent`` and ``gateway`` import from here; this package imports from neither, so the
dependency goes one way (only ``agent.demo`` links the agent to the gateway).
"""

__version__ = "0.1.0"
