"""The Gemini ``generateContent`` wire format, as far as unigate writes and reads it.

Reference: https://ai.google.dev/api/generate-content (``GenerateContentRequest``,
``Content``, ``Part``, ``GenerationConfig``, ``GenerateContentResponse``) and
https://ai.google.dev/api/caching#Schema for function parameters. Vertex AI's
``generateContent`` takes and returns the same shapes (camelCase JSON).
"""

from __future__ import annotations

from typing import Any, Final, TypedDict


class Blob(TypedDict):
    mimeType: str
    data: str  # base64


class FileData(TypedDict):
    mimeType: str
    fileUri: str


class FunctionCall(TypedDict, total=False):
    name: str
    args: dict[str, Any]
    id: str


class FunctionResponse(TypedDict, total=False):
    name: str
    response: dict[str, Any]
    id: str


class Part(TypedDict, total=False):
    text: str
    thought: bool
    thoughtSignature: str
    inlineData: Blob
    fileData: FileData
    functionCall: FunctionCall
    functionResponse: FunctionResponse


class Content(TypedDict, total=False):
    role: str
    parts: list[Part]


class FunctionDeclaration(TypedDict, total=False):
    name: str
    description: str
    parameters: dict[str, Any]


class Tool(TypedDict):
    functionDeclarations: list[FunctionDeclaration]


class FunctionCallingConfig(TypedDict, total=False):
    mode: str  # AUTO, ANY, NONE
    allowedFunctionNames: list[str]


class ToolConfig(TypedDict):
    functionCallingConfig: FunctionCallingConfig


class ThinkingConfig(TypedDict, total=False):
    thinkingBudget: int
    includeThoughts: bool


class GenerationConfig(TypedDict, total=False):
    temperature: float
    topP: float
    topK: int
    candidateCount: int
    maxOutputTokens: int
    stopSequences: list[str]
    presencePenalty: float
    frequencyPenalty: float
    seed: int
    responseMimeType: str
    responseSchema: dict[str, Any]
    thinkingConfig: ThinkingConfig


class GenerateContentRequest(TypedDict, total=False):
    contents: list[Content]
    systemInstruction: Content
    tools: list[Tool]
    toolConfig: ToolConfig
    generationConfig: GenerationConfig


#: Gemini's ``Candidate.finishReason`` → OpenAI's ``finish_reason`` (a candidate that called
#: a function is ``tool_calls`` whatever Gemini says). Reasons not listed map to "stop".
FINISH_REASONS: Final[dict[str, str]] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
