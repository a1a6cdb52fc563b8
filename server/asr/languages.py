"""The languages Whisper recognises: BCP-47 tags in, Whisper's codes out, and the English names that the
OpenAI `verbose_json` response reports mapped back to codes."""

from __future__ import annotations

from server.core.errors import InvalidArgument

WHISPER_LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip
_CODE_BY_NAME = {name: code for code, name in WHISPER_LANGUAGES.items()}
# BCP-47 primary subtags that Whisper spells differently.
_ALIASES = {"jv": "jw", "iw": "he", "nb": "no", "fil": "tl"}
MAX_LANGUAGE_TAG_CHARS = 35


def whisper_language(tag: str, field: str = "language") -> str | None:
    """The Whisper code for a BCP-47 tag (`en-US` → `en`); None for an empty tag (detect the language)."""
    if not tag.strip():
        return None
    if len(tag) > MAX_LANGUAGE_TAG_CHARS:
        raise InvalidArgument.field(field, f"must be at most {MAX_LANGUAGE_TAG_CHARS} characters")
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    code = _ALIASES.get(primary, primary)
    if code not in WHISPER_LANGUAGES:
        raise InvalidArgument.field(
            field, f"{tag!r} is not a language the recogniser knows (use a BCP-47 tag such as 'en' or 'de-DE')"
        )
    return code


def language_code(reported: str | None) -> str | None:
    """A provider's language (a code such as `en`, or a name such as `english`) as a Whisper code; None when
    unknown."""
    if not reported:
        return None
    value = reported.strip().lower()
    if value in WHISPER_LANGUAGES:
        return value
    return _CODE_BY_NAME.get(value)
