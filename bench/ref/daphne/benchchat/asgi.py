"""HTTP through Django, WebSockets through AuthMiddlewareStack + URLRouter."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchchat.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": AuthMiddlewareStack(
            URLRouter([path("ws/chat/<int:pk>/", ChatConsumer.as_asgi())])
        ),
    }
)
