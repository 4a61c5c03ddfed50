"""A tiny random multi-speaker VITS, built with coqui's own config and model classes and saved
the way coqui's trainer saves one (config.json, speakers file, checkpoint), for tests."""

from __future__ import annotations

from pathlib import Path

SPEAKERS = ["ada", "bo", "cy"]


def make_tiny_vits(directory: Path, speakers: list[str] | None = SPEAKERS, seed: int = 0,
                   full_size: bool = False) -> Path:
    """Write a character-based VITS (no phonemizer needed) to ``directory``; return it.

    ``full_size``: the architecture of coqui's released VCTK VITS (coqui's ``VitsArgs`` defaults:
    6-layer text encoder of 192 channels, HiFi-GAN V1 decoder, 22,050 Hz, hop 256), for benchmarks."""
    import torch
    from trainer.io import save_checkpoint
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs
    from TTS.tts.utils.speakers import SpeakerManager

    directory.mkdir(parents=True, exist_ok=True)
    args = VitsArgs(hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_heads_text_encoder=2,
                    num_layers_text_encoder=1, num_layers_flow=1, num_layers_posterior_encoder=1,
                    resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 3, 5]],
                    upsample_rates_decoder=[4, 4, 4], upsample_kernel_sizes_decoder=[8, 8, 8],
                    upsample_initial_channel_decoder=32, init_discriminator=False, out_channels=65,
                    use_speaker_embedding=bool(speakers), speaker_embedding_channels=8,
                    length_scale=6.0)  # a random duration predictor says ~1 frame per symbol: slow it to speech pace
    characters = CharactersConfig(characters_class="TTS.tts.models.vits.VitsCharacters", pad="<PAD>", eos="<EOS>",
                                  bos="<BOS>", blank="<BLNK>", characters="abcdefghijklmnopqrstuvwxyz",
                                  punctuations="!'(),-.:;? ", phonemes=None, is_unique=True, is_sorted=True)
    audio = BaseAudioConfig(sample_rate=16000, hop_length=64, win_length=128, fft_size=128, num_mels=20)
    if full_size:
        args = VitsArgs(use_speaker_embedding=bool(speakers), speaker_embedding_channels=256, init_discriminator=False,
                        length_scale=2.0)
        audio = BaseAudioConfig(sample_rate=22050, hop_length=256, win_length=1024, fft_size=1024, num_mels=80)
    config = VitsConfig(model_args=args, use_phonemes=False, text_cleaner="basic_cleaners", characters=characters,
                        audio=audio, add_blank=True, output_path=str(directory))
    if speakers:
        manager = SpeakerManager()
        manager.name_to_id = {name: i for i, name in enumerate(speakers)}
        manager.save_ids_to_file(str(directory / "speakers.json"))
        config.model_args.speakers_file = config.speakers_file = str(directory / "speakers.json")
        config.num_speakers = len(speakers)
    torch.manual_seed(seed)
    model = Vits(config)
    config.save_json(str(directory / "config.json"))
    save_checkpoint(config, model, str(directory), current_step=1, epoch=1)
    return directory


def make_tiny_xtts(directory: Path, seed: int = 0) -> Path:
    """Write a small random XTTS (GPT of one layer; coqui's own decoder) as released XTTS models
    are laid out: config.json, model.pth ({"model": state dict}) and the BPE vocab.json.

    The GPT is tiny and may say at most 27 audio codes (about 1.3 s); the HiFi-GAN decoder and
    its speaker encoder keep coqui's sizes (90 MB), since ``Xtts.init_models`` fixes their widths
    (``XttsArgs`` sets only their input and speaker-embedding sizes)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts, XttsArgs, XttsAudioConfig

    directory.mkdir(parents=True, exist_ok=True)
    vocab = Tokenizer(models.BPE(unk_token="[UNK]"))
    vocab.pre_tokenizer = pre_tokenizers.Whitespace()
    vocab.train_from_iterator(["hello there old friend", "abcdefghijklmnopqrstuvwxyz .,!?'"],
                              trainers.BpeTrainer(vocab_size=120, special_tokens=["[STOP]", "[UNK]", "[SPACE]",
                                                                                  "[START]", "[en]"]))
    vocab.save(str(directory / "vocab.json"))
    args = XttsArgs(gpt_layers=1, gpt_n_model_channels=32, gpt_n_heads=2, gpt_number_text_tokens=vocab.get_vocab_size(),
                    gpt_start_text_token=3, gpt_stop_text_token=0, gpt_num_audio_tokens=66, gpt_start_audio_token=64,
                    gpt_stop_audio_token=65, gpt_max_audio_tokens=30, gpt_max_text_tokens=100,
                    gpt_max_prompt_tokens=20, decoder_input_dim=32, tokenizer_file=str(directory / "vocab.json"))
    config = XttsConfig(model_args=args, audio=XttsAudioConfig(), languages=["en"])
    torch.manual_seed(seed)
    model = Xtts(config)
    model.init_models()
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    config.save_json(str(directory / "config.json"))
    return directory
