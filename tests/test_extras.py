"""Testes do código exportado pelo capítulo 08: KV cache, perda DPO, BM25, o chat `conversar` e a caixa de chat."""
import math

import pytest
import tiktoken
import torch

from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import generate
from llm_do_zero.instrucoes import format_input, INSTRUCTION_SETTINGS, PREAMBULO, RESPONSE_HEADER
from llm_do_zero.extras import (
    BM25, build_chat_prompt, chat_loop, chat_widget, ChatSession, compute_dpo_loss, conversar,
    generate_with_kv_cache, GPTModelKV, sequence_logprob, words_for_search,
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
