"""Rendering a topology as a Compose project, shared by the compose and portainer backends.

(The rendering code moves here from compose.py once the compose backend settles; until then this
module re-exports it, so the portainer backend never imports another backend.)
"""

from .compose import project_name, render, render_text

__all__ = ["project_name", "render", "render_text"]
