"""The seed's chat consumer written the plain Django Channels way:
AsyncJsonWebsocketConsumer, session auth from AuthMiddlewareStack, the
in-memory channel layer, the Django ORM for rooms and messages. It speaks
chat-server's wire protocol (authentication frame, user_joined, history,
chat with is_mine/is_current, group_complete, complete, ping/pong) so the
same load generator measures it."""
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from .models import Message, Room

COMPLETE = {"action": "complete", "payload": None}
GROUP_COMPLETE = {"action": "group_complete", "payload": None}


def stamp(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def auth_frame(code, text, detail):
    return {
        "action": "authentication",
        "payload": {"status_code": code, "status_text": text, "data": {"detail": detail}},
    }


def invalid(type_, loc, msg):
    return {"action": "error", "payload": [{"type": type_, "loc": loc, "msg": msg}]}


@database_sync_to_async
def get_room(pk, user):
    room = Room.objects.filter(pk=pk).first()
    if room is None:
        return None, False
    return room, room.members.filter(pk=user.pk).exists()


@database_sync_to_async
def get_history(room):
    last = list(room.messages.select_related("user").order_by("-timestamp", "-id")[:50])
    return [
        {"username": m.user.username, "message": m.content, "timestamp": stamp(m.timestamp)}
        for m in reversed(last)
    ]


@database_sync_to_async
def save_message(room, user, text):
    return Message.objects.create(room=room, user=user, content=text)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    group_name = None

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.send_json(
                auth_frame(403, "Forbidden", "Authentication credentials were not provided.")
            )
            await self.close(4403)
            return
        self.room, member = await get_room(self.scope["url_route"]["kwargs"]["pk"], user)
        if self.room is None:
            await self.send_json(auth_frame(404, "Not Found", "Not found."))
            await self.close(4404)
            return
        if not member:
            await self.send_json(auth_frame(403, "Forbidden", "You are not a member of this room."))
            await self.close(4403)
            return
        await self.send_json(auth_frame(200, "OK", "OK"))
        self.group_name = "chat_room_%d" % self.room.pk
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.group_send(self.presence("user_joined"))
        await self.send_json({"action": "history", "payload": await get_history(self.room)})

    def presence(self, action):
        return {
            "action": action,
            "payload": {
                "username": self.scope["user"].username,
                "room_name": self.room.name,
                "timestamp": stamp(timezone.now()),
            },
        }

    async def group_send(self, content, exclude_current=False):
        await self.channel_layer.group_send(
            self.group_name,
            {
                "type": "chat.relay",
                "content": content,
                "user_id": self.scope["user"].pk,
                "sender": self.channel_name,
                "exclude_current": exclude_current,
            },
        )

    async def chat_relay(self, event):
        current = event["sender"] == self.channel_name
        if current and event["exclude_current"]:
            return
        message = dict(event["content"])
        message["is_mine"] = event["user_id"] == self.scope["user"].pk
        message["is_current"] = current
        await self.send_json(message)
        await self.send_json(GROUP_COMPLETE)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.send_json(invalid("frame_type", [], "JSON text frames only"))
        else:
            try:
                content = json.loads(text_data)
            except ValueError as e:
                await self.send_json(invalid("json_invalid", [], "Invalid JSON: %s" % e))
            else:
                await self.receive_json(content)
        await self.send_json(COMPLETE)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.send_json(invalid("dict_type", [], "Input should be a valid dictionary"))
            return
        action, payload = content.get("action"), content.get("payload")
        extra = [k for k in content if k not in ("action", "payload")]
        if extra:
            await self.send_json(invalid("extra_forbidden", [extra[0]], "Extra inputs are not permitted"))
        elif action == "ping":
            await self.send_json({"action": "pong", "payload": None})
        elif action != "chat":
            await self.send_json(
                invalid("union_tag_invalid", ["action"],
                        "Input tag does not match any of the expected tags: 'chat', 'ping'")
            )
        elif not isinstance(payload, str):
            await self.send_json(invalid("string_type", ["payload"], "Input should be a valid string"))
        elif not 1 <= len(payload) <= 4000:
            await self.send_json(
                invalid("string_too_long" if payload else "string_too_short", ["payload"],
                        "String should have 1 to 4000 characters")
            )
        else:
            message = await save_message(self.room, self.scope["user"], payload)
            await self.group_send(
                {
                    "action": "chat",
                    "payload": payload,
                    "username": self.scope["user"].username,
                    "timestamp": stamp(message.timestamp),
                }
            )

    async def disconnect(self, code):
        if self.group_name:
            await self.group_send(self.presence("user_left"), exclude_current=True)
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
