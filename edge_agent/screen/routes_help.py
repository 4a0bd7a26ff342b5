"""Help on every screen, from its top bar: "再说一遍 / Say it again" and "呼叫工作人员 / Call staff"."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.screen.context import Context, ScreenError
from edge_agent.screen.speech import MAX_WORDS

router = APIRouter(prefix="/api/help", tags=["help"])

# A screen's name as the page calls it (index.html: the section's id without "screen-").
SCREEN_NAME = r"^[a-z][a-z0-9-]{0,31}$"


class SayAgain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: str | None = Field(default=None, min_length=1, max_length=MAX_WORDS,
                              description="the screen's instruction, in the speaker's language")
    result: bool = Field(default=False, description="say the last result again (the result screen)")
    language: Literal["zh-CN", "en"] = Field(default="zh-CN", description="the page's language: English words in an English voice")


class Said(BaseModel):
    words: str


@router.post("/say-again")
async def say_again(body: SayAgain, context: Context) -> Said:
    """Say the screen's words again through the loudspeaker."""
    speaker = context.speaker
    if speaker is None:
        raise ScreenError(409, "speech_off", "screen.speak_results is off: this kiosk does not speak")
    # The result as it was said: in the kiosk's voice, whatever the page's language.
    words = speaker.last_words if body.result else body.words
    if words is None:
        raise ScreenError(422, "bad_request", "give words, or result: true once a result was said")
    speaker.say_words(words, english=body.language == "en" and not body.result)
    return Said(words=words)


class CallStaff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screen: str = Field(pattern=SCREEN_NAME, description="the screen the person is on")


class Called(BaseModel):
    outcome: Literal["called", "already_called"]


@router.post("/call-staff")
async def call_staff(body: CallStaff, context: Context) -> Called:
    """Call staff to this kiosk: an event the bridge turns into an alert for the station."""
    if context.staff is None:
        raise ScreenError(503, "staff_call_unavailable", "the kiosk has no outbox to send the call through")
    return Called(outcome=context.staff.call(body.screen))
