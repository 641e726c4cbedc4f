"""The catalogue of system events a webhook can subscribe to, in the product document's words."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    description: str

    @property
    def system_event_type(self) -> str:
        """Upper snake case of the event name: asset.addToFolder -> ASSET_ADD_TO_FOLDER."""
        snake = "".join("_" + c if c.isupper() else c for c in self.name.replace(".", "_"))
        return snake.upper()


EVENT_TYPES = (
    EventType("asset.addToFolder", "Triggers when an asset is added or moved to a folder."),
    EventType("asset.checkin", "Triggers when an asset is checked in."),
    EventType("asset.checkout", "Triggers when an asset is checked out."),
    EventType(
        "asset.create",
        "Triggers when a new asset is uploaded. Reimports and resyncs do not trigger this event.",
    ),
    EventType("asset.delete", "Triggers when an asset is deleted."),
    EventType("asset.expire", "Triggers when an asset is expired."),
    EventType("folder.create", "Triggers when a new folder is created."),
    EventType(
        "folder.update",
        "Triggers when a folder's parent, name, description, path, visibility, "
        "portal image or modifying user changes.",
    ),
    EventType("user.create", "Triggers when a new user is created."),
    EventType("user.expire", "Triggers when a user is expired."),
    EventType(
        "user.update",
        "Triggers when a user's name, password, email, phone, organization, "
        "expiration date, user level or notify setting changes.",
    ),
)

EVENT_NAMES = tuple(event.name for event in EVENT_TYPES)
EVENTS_BY_NAME = {event.name: event for event in EVENT_TYPES}
