"""Testes do código exportado pelo capítulo 08: KV cache, perda DPO, McNemar, BM25, kappa de Cohen, o juiz de
um token, o chat `conversar` e a caixa de chat."""
import math
import random

import pytest
import tiktoken
import torch

from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import generate
from llm_do_zero.instrucoes import format_input, INSTRUCTION_SETTINGS, mcnemar_test, PREAMBULO, RESPONSE_HEADER
from llm_do_zero.extras import (
    BM25, build_chat_prompt, chat_loop, chat_widget, ChatSession, cohen_kappa, compute_dpo_loss, conversar,
    generate_with_kv_cache, GPTModelKV, sequence_logprob, verdict_logprobs, words_for_search,
)

CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": True}


def _tiny_gpt(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(CFG).eval()


# ---------------------------------------------------------------- KV cache

def test_forward_with_cache_matches_full_forward():
    model = GPTModelKV.from_gpt(_tiny_gpt())
    x = torch.randint(0, CFG["vocab_size"], (3, 11))
    with torch.no_grad():
        full = model(x)
        cache = None
        pieces = []
        for a, b in ((0, 4), (4, 5), (5, 11)):
            logits, cache = model.forward_with_cache(x[:, a:b], cache)
            pieces.append(logits)
    assert torch.allclose(full, torch.cat(pieces, dim=1), atol=1e-5)
    assert cache[0][0].shape == (3, CFG["n_heads"], 11, CFG["emb_dim"] // CFG["n_heads"])


@pytest.mark.parametrize("prompt_len,new_tokens", [(1, 10), (5, 11), (6, 30)])
def test_kv_generation_equals_plain_greedy_generation(prompt_len, new_tokens):
    gpt = _tiny_gpt(seed=prompt_len)
    kv_model = GPTModelKV.from_gpt(gpt)
    idx = torch.randint(0, CFG["vocab_size"], (2, prompt_len))
    expected = generate(gpt, idx, new_tokens, CFG["context_length"])      # passa da janela quando 6 + 30 > 16
    assert torch.equal(generate_with_kv_cache(kv_model, idx, new_tokens, CFG["context_length"]), expected)
    assert torch.equal(generate_with_kv_cache(kv_model, idx, new_tokens, 8), generate(gpt, idx, new_tokens, 8))


def test_kv_generation_stops_at_eos_and_rejects_bad_input():
    gpt = _tiny_gpt()
    kv_model = GPTModelKV.from_gpt(gpt)
    idx = torch.randint(0, CFG["vocab_size"], (1, 4))
    first = generate(gpt, idx, 1, CFG["context_length"])[0, -1].item()
    assert generate_with_kv_cache(kv_model, idx, 10, eos_id=first).shape == (1, 4)
    with pytest.raises(ValueError, match="vazio"):
        generate_with_kv_cache(kv_model, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="GPTModelKV"):
        generate_with_kv_cache(gpt, idx, 3)


def test_from_gpt_keeps_weights_and_config():
    gpt = _tiny_gpt()
    kv_model = GPTModelKV.from_gpt(gpt)
    assert isinstance(kv_model, GPTModel)
    for (k1, v1), (k2, v2) in zip(gpt.state_dict().items(), kv_model.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert kv_model.pos_emb.num_embeddings == CFG["context_length"]
    assert kv_model.trf_blocks[0].att.W_query.bias is not None


# ---------------------------------------------------------------- DPO

def test_dpo_loss_hand_computed():
    # recompensas: escolhida 0,5 * (-1 - (-1,5)) = 0,25; rejeitada 0,5 * (-2 - (-1,5)) = -0,25; margem 0,5
    loss, chosen, rejected = compute_dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]),
                                              torch.tensor([-1.5]), torch.tensor([-1.5]), beta=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.5)), abs=1e-6)   # 0,474077
    assert chosen.item() == pytest.approx(0.25) and rejected.item() == pytest.approx(-0.25)


def test_dpo_loss_is_log2_when_policy_equals_reference_and_has_gradient():
    logps = torch.tensor([-3.0, -7.0], requires_grad=True)
    loss, _, _ = compute_dpo_loss(logps, torch.tensor([-4.0, -2.0]), logps.detach(), torch.tensor([-4.0, -2.0]))
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert torch.all(logps.grad < 0)          # subir o log-prob da escolhida baixa a perda


def test_sequence_logprob_sums_only_masked_targets():
    model = _tiny_gpt()
    ids = torch.randint(0, CFG["vocab_size"], (1, 6))
    mask = torch.tensor([[False, False, False, True, True, False]])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids[:, :-1]), dim=-1)[0]
        expected = log_probs[2, ids[0, 3]] + log_probs[3, ids[0, 4]]
        assert sequence_logprob(model, ids, mask).item() == pytest.approx(expected.item(), abs=1e-5)


# ---------------------------------------------------------------- McNemar

def test_mcnemar_hand_computed():
    # 6 itens só A acerta, 1 só B acerta, 10 os dois: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8 / 128 = 0,125
    a = [True] * 6 + [False] + [True] * 10
    b = [False] * 6 + [True] + [True] * 10
    assert mcnemar_test(a, b) == (6, 1, pytest.approx(0.125))
    assert mcnemar_test(b, a) == (1, 6, pytest.approx(0.125))        # simétrico
    assert mcnemar_test([True] * 12, [False] * 12)[2] == pytest.approx(2 / 2 ** 12)


def test_mcnemar_matches_the_two_tails_of_the_fair_binomial():
    rng = random.Random(0)
    for _ in range(50):
        n_a, n_b, n_same = rng.randint(0, 15), rng.randint(0, 15), rng.randint(0, 20)
        a = [True] * n_a + [False] * n_b + [rng.random() < 0.5 for _ in range(n_same)]
        b = [False] * n_a + [True] * n_b + a[n_a + n_b:]
        _, _, p = mcnemar_test(a, b)
        n = n_a + n_b
        pmf = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
        # bilateral pelo critério da verossimilhança mínima: soma das divisões tão improváveis quanto a observada
        esperado = sum(q for q in pmf if q <= pmf[n_a] + 1e-15) if n else 1.0
        assert p == pytest.approx(min(1.0, esperado))


def test_mcnemar_without_disagreements_and_bad_input():
    assert mcnemar_test([True, False, True], [True, False, True]) == (0, 0, 1.0)
    assert mcnemar_test([1, 0, 1, 0], [0, 1, 1, 0])[2] == 1.0               # b = c = 1: nenhuma evidência
    with pytest.raises(ValueError, match="mesmos itens"):
        mcnemar_test([True, False], [True])


# ---------------------------------------------------------------- kappa de Cohen

def test_cohen_kappa_hand_computed():
    # tabela 2x2 clássica: sim/sim 20, sim/não 5, não/sim 10, não/não 15 (n = 50)
    # p_o = 35/50 = 0,7; p_e = 0,5 * 0,6 + 0,5 * 0,4 = 0,5; kappa = (0,7 - 0,5) / (1 - 0,5) = 0,4
    juiz = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    gabarito = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(juiz, gabarito) == pytest.approx(0.4)
    assert cohen_kappa(gabarito, juiz) == pytest.approx(0.4)                 # simétrico


def test_cohen_kappa_extremes_and_constant_raters():
    gabarito = [True, False, True, True, False, False, True, False]
    assert cohen_kappa(gabarito, gabarito) == pytest.approx(1.0)
    assert cohen_kappa([not g for g in gabarito], gabarito) == pytest.approx(-1.0)
    assert cohen_kappa([True] * 8, gabarito) == pytest.approx(0.0)           # sempre "sim": só o acaso
    assert cohen_kappa([False] * 8, gabarito) == pytest.approx(0.0)          # sempre "não"
    # três rótulos: p_o = 4/6; p_e = (2*2 + 2*2 + 2*2) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 0,5
    assert cohen_kappa(list("aabbcc"), list("abbacc")) == pytest.approx(0.5)


def test_cohen_kappa_rejects_bad_input():
    with pytest.raises(ValueError, match="mesmos itens"):
        cohen_kappa([True], [True, False])
    with pytest.raises(ValueError, match="pelo menos um item"):
        cohen_kappa([], [])
    with pytest.raises(ValueError, match="indefinido"):
        cohen_kappa([True, True], [True, True])


# ---------------------------------------------------------------- o juiz de um token

def _byte_tokenizer() -> tiktoken.Encoding:
    """Tokenizador mínimo (um token por byte, fim de texto = 256): ids pequenos, eot diferente do do GPT-2."""
    return tiktoken.Encoding("bytes-teste", pat_str=r"[\s\S]", mergeable_ranks={bytes([i]): i for i in range(256)},
                             special_tokens={"<|endoftext|>": 256})


def _byte_gpt(context: int = 64, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel({"vocab_size": 257, "context_length": context, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                     "drop_rate": 0.0, "qkv_bias": False}).eval()


def test_single_token_verdicts_read_the_next_token_distribution():
    tok, model = _byte_tokenizer(), _byte_gpt()
    entry = {"instrucao": "Ok?", "entrada": ""}
    prompt = tok.encode(format_input(entry, preambulo=False) + RESPONSE_HEADER)
    with torch.no_grad():
        log_p = torch.log_softmax(model(torch.tensor([prompt]))[0, -1], dim=-1)
    sim, nao = verdict_logprobs(model, tok, entry, ("S", "N"), preambulo=False)
    assert sim == pytest.approx(log_p[ord("S")].item(), abs=1e-5)
    assert nao == pytest.approx(log_p[ord("N")].item(), abs=1e-5)


def test_longer_verdicts_are_scored_per_token():
    tok, model = _byte_tokenizer(), _byte_gpt()
    entry = {"instrucao": "Ok?", "entrada": ""}
    prompt = tok.encode(format_input(entry, preambulo=False) + RESPONSE_HEADER)
    ids = prompt + list(b"SIM")
    with torch.no_grad():
        log_p = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0], dim=-1)
    esperado = sum(log_p[len(prompt) - 1 + i, ids[len(prompt) + i]].item() for i in range(3)) / 3
    assert verdict_logprobs(model, tok, entry, ("SIM",), preambulo=False)[0] == pytest.approx(esperado, abs=1e-5)
    # janela curta: só as últimas posições entram, e a conta continua valendo
    curto = _byte_gpt(context=8)
    assert len(verdict_logprobs(curto, tok, entry, ("S", "NAO"), preambulo=False)) == 2
    with pytest.raises(ValueError, match="veredito"):
        verdict_logprobs(model, tok, entry, ("",), preambulo=False)


# ---------------------------------------------------------------- BM25

def test_words_for_search_lowercases_and_strips_accents():
    assert words_for_search("Febre Tifóide, em Jerusalém!") == ["febre", "tifoide", "em", "jerusalem"]


def test_bm25_scores_on_a_tiny_corpus():
    docs = ["gato preto", "gato gato branco", "cachorro"]
    index = BM25(docs, k1=1.5, b=0.75)
    # IDF: "gato" está em 2 de 3 documentos, "preto" em 1
    idf_gato = math.log((3 - 2 + 0.5) / (2 + 0.5) + 1)
    idf_preto = math.log((3 - 1 + 0.5) / (1 + 0.5) + 1)
    assert index.idf["gato"] == pytest.approx(idf_gato)
    avg = (2 + 3 + 1) / 3

    def termo(tf, length, idf):
        return idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * length / avg))

    expected = [termo(1, 2, idf_gato) + termo(1, 2, idf_preto), termo(2, 3, idf_gato), 0.0]
    assert index.scores("gato preto") == pytest.approx(expected)
    assert index.search("gato preto", k=2) == [0, 1]
    assert index.scores("palavra ausente") == [0.0, 0.0, 0.0]


def test_bm25_rejects_empty_corpus():
    with pytest.raises(ValueError):
        BM25([])


# ---------------------------------------------------------------- conversar

@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


def _history(n: int) -> list[tuple[str, str]]:
    return [(f"Pergunta número {i}?", f"Resposta {i}") for i in range(n)]


def test_build_chat_prompt_drops_oldest_turns_and_keeps_header(tokenizer):
    ids, kept = build_chat_prompt(_history(10), "Qual é a capital da Bahia?", tokenizer, 100)
    text = tokenizer.decode(ids)
    assert len(ids) <= 100 and 0 < kept < 10
    assert text.startswith(PREAMBULO)
    assert text.endswith("### Instrução: Qual é a capital da Bahia?\n\n### Resposta:")
    assert "Pergunta número 9?" in text and "Resposta 9" in text                 # o turno mais recente fica
    assert f"Pergunta número {10 - kept}?" in text and f"Pergunta número {9 - kept}?" not in text
    everything, kept_all = build_chat_prompt(_history(10), "Oi?", tokenizer, 10_000)
    assert kept_all == 10 and "Pergunta número 0?" in tokenizer.decode(everything)


def test_build_chat_prompt_rejects_empty_message_and_impossible_budget(tokenizer):
    with pytest.raises(ValueError, match="vazia"):
        build_chat_prompt([], "   ", tokenizer, 100)
    with pytest.raises(ValueError, match="cabeçalho"):
        build_chat_prompt(_history(2), "Qual é a capital da Bahia?", tokenizer, 20)


def test_conversar_keeps_the_model_input_inside_the_context(tokenizer):
    torch.manual_seed(0)
    context = 96
    model = GPTModel({"vocab_size": 50257, "context_length": context, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                      "drop_rate": 0.0, "qkv_bias": False})
    inputs = []
    model.register_forward_pre_hook(lambda module, args: inputs.append(args[0][0].tolist()))
    historico = _history(10)
    resposta = conversar(model, historico, "Qual é a capital da Bahia?", tokenizer, max_new_tokens=8, verbose=False)
    assert isinstance(resposta, str)
    assert len(historico) == 11 and historico[-1] == ("Qual é a capital da Bahia?", resposta)
    assert max(len(ids) for ids in inputs) <= context
    assert len(inputs[0]) <= context - 8                       # o prompt deixa espaço para a resposta
    assert tokenizer.decode(inputs[0]).startswith(PREAMBULO)   # o cabeçalho nunca sai
    with pytest.raises(ValueError):
        conversar(model, [], "Oi?", tokenizer, max_new_tokens=context)


def test_conversar_stops_at_the_end_of_text_of_the_models_tokenizer():
    tok, model = _byte_tokenizer(), _byte_gpt(context=128)
    model.out_head.register_forward_hook(lambda module, args, out: out + 100.0 * (torch.arange(257) == 256))
    chamadas = _recording(model)
    resposta = conversar(model, [], "Oi?", tok, max_new_tokens=20, header="", verbose=False)
    assert resposta == "" and len(chamadas) == 1          # o primeiro token já é o fim de texto: para ali


def test_typed_special_token_is_plain_text_in_the_chat_prompt():
    tok = _byte_tokenizer()
    ids, _ = build_chat_prompt([], "<|endoftext|>?", tok, 1000, header="")
    assert tok.eot_token not in ids and tok.decode(ids).endswith("<|endoftext|>?\n\n### Resposta:")


# ---------------------------------------------------------------- a caixa de chat (ChatSession)

def _chat_model(context: int = 96) -> GPTModel:
    torch.manual_seed(0)
    return GPTModel({"vocab_size": 50257, "context_length": context, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                     "drop_rate": 0.0, "qkv_bias": False}).eval()


def _recording(model: GPTModel) -> list[list[int]]:
    """Liga um gancho que guarda os ids de cada chamada ao modelo (a primeira de cada turno é o prompt)."""
    inputs: list[list[int]] = []
    model.register_forward_pre_hook(lambda module, args: inputs.append(args[0][0].tolist()))
    return inputs


def _turno_do_capitulo_07(mensagem: str, resposta: str | None = None) -> str:
    """O turno escrito à mão a partir das peças do capítulo 07 (referência independente de format_chat_turn)."""
    texto = format_input({"instrucao": mensagem, "entrada": ""}, preambulo=False) + RESPONSE_HEADER
    return texto if resposta is None else texto + " " + resposta


def test_chat_session_history_grows_and_prompt_holds_earlier_turns_in_chapter_07_format(tokenizer):
    model = _chat_model(context=256)                         # janela folgada: nenhum turno sai
    inputs = _recording(model)
    sessao = ChatSession(model, tokenizer, max_new_tokens=6, header="")
    mensagens = ["Qual é a capital da Bahia?", "E a de Pernambuco?", "Qual é o antônimo de alto?"]
    for n, mensagem in enumerate(mensagens, start=1):
        inputs.clear()
        resposta = sessao.send(mensagem)
        assert len(sessao.history) == n and sessao.history[-1] == (mensagem, resposta)
        esperado = "\n\n".join([_turno_do_capitulo_07(u, a) for u, a in sessao.history[:-1]]
                                + [_turno_do_capitulo_07(mensagem)])
        assert inputs[0] == tokenizer.encode(esperado)          # o que o modelo recebeu de fato
        assert sessao.turns_in_prompt == n - 1
    assert sessao.prompt_for("Oi?").startswith("### Instrução: Qual é a capital da Bahia?\n\n### Resposta:")
    assert sessao.status() == "o modelo viu 2 de 2 turnos anteriores"


def test_chat_session_drops_oldest_turns_when_the_prompt_would_not_fit(tokenizer):
    context, novos = 96, 6
    model = _chat_model(context)
    inputs = _recording(model)
    sessao = ChatSession(model, tokenizer, max_new_tokens=novos, header=PREAMBULO[:40])
    sessao.history.extend(_history(8))
    sessao.send("Qual é a capital da Bahia?")
    prompt = tokenizer.decode(inputs[0])
    assert len(sessao.history) == 9 and 0 < sessao.turns_in_prompt < 8
    assert len(inputs[0]) <= context - novos and max(len(ids) for ids in inputs) <= context
    assert prompt.startswith(PREAMBULO[:40])                                 # o cabeçalho nunca sai
    assert "Pergunta número 7?" in prompt and "Pergunta número 0?" not in prompt
    mais_antigo = 8 - sessao.turns_in_prompt
    assert f"Pergunta número {mais_antigo}?" in prompt and f"Pergunta número {mais_antigo - 1}?" not in prompt


def test_chat_session_empty_message_explains_and_changes_nothing(tokenizer):
    model = _chat_model()
    inputs = _recording(model)
    sessao = ChatSession(model, tokenizer, max_new_tokens=6, header="")
    sessao.send("Oi?")
    antes, visto_antes, chamadas = list(sessao.history), sessao.turns_in_prompt, len(inputs)
    for vazia in ("", "   ", "\n"):
        with pytest.raises(ValueError, match="A mensagem está vazia"):
            sessao.send(vazia)
    assert sessao.history == antes and sessao.turns_in_prompt == visto_antes and len(inputs) == chamadas
    sessao.clear()
    assert sessao.history == [] and "Nenhuma mensagem" in sessao.to_html()


def test_chat_session_header_follows_the_mode_and_budget_is_checked(tokenizer, monkeypatch):
    model = _chat_model()
    for modo in ("rapido", "completo"):
        monkeypatch.setenv("LLM_MODO", modo)
        esperado = PREAMBULO if INSTRUCTION_SETTINGS[modo]["preambulo"] else ""
        assert ChatSession(model, tokenizer).header == esperado
    assert INSTRUCTION_SETTINGS["completo"]["preambulo"] != INSTRUCTION_SETTINGS["rapido"]["preambulo"]
    with pytest.raises(ValueError, match="max_new_tokens"):
        ChatSession(model, tokenizer, max_new_tokens=96)


def test_chat_session_html_escapes_the_conversation(tokenizer):
    sessao = ChatSession(_chat_model(), tokenizer, max_new_tokens=4, header="")
    sessao.history.extend([("<script>alert(1)</script>", "a & b"), ("Oi?", "")])
    pagina = sessao.to_html()
    assert "<script>" not in pagina and "&lt;script&gt;" in pagina and "a &amp; b" in pagina
    assert "(resposta vazia)" in pagina


def test_chat_loop_reads_until_an_empty_line(tokenizer):
    sessao = ChatSession(_chat_model(), tokenizer, max_new_tokens=4, header="")
    entradas = iter(["Qual é a capital da Bahia?", "   ", "nunca lida"])
    impresso: list[str] = []
    chat_loop(sessao, input_fn=lambda _: next(entradas), print_fn=impresso.append)
    assert [u for u, _ in sessao.history] == ["Qual é a capital da Bahia?"]
    assert impresso[1].startswith(f"Modelo: {sessao.history[0][1]}") and impresso[-1] == "Fim da conversa."
    assert next(entradas) == "nunca lida"


def test_chat_widget_wires_send_and_clear_to_the_session(tokenizer):
    pytest.importorskip("ipywidgets")
    sessao = ChatSession(_chat_model(), tokenizer, max_new_tokens=4, header="")
    caixa = chat_widget(sessao)
    conversa, (campo, enviar, limpar), aviso = caixa.children[0], caixa.children[1].children, caixa.children[2]
    campo.value = "Qual é a capital da Bahia?"
    enviar.click()
    assert len(sessao.history) == 1 and campo.value == ""
    assert "Qual é a capital da Bahia?" in conversa.value and "0 de 0 turnos" in aviso.value
    campo.value = "   "
    enviar.click()
    assert len(sessao.history) == 1 and "A mensagem está vazia" in aviso.value
    limpar.click()
    assert sessao.history == [] and conversa.value == sessao.to_html() and aviso.value == ""
