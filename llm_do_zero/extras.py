"""Capítulo 08-extras: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`08-extras/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
from collections import Counter
import html
import math
import os
import re
import subprocess
import sys
import unicodedata

import torch
import torch.nn.functional as F

from llm_do_zero.oficina import get_mode
from llm_do_zero.atencao import MultiHeadAttention
from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import generate
from llm_do_zero.instrucoes import (
    extract_response, format_input, INSTRUCTION_SETTINGS, PREAMBULO, RESPONSE_HEADER,
)


# %% 08-extras/notebook.ipynb · célula 6
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8). Quase tudo aqui vem de treinos curtos:
# a folga padrão é de 3 pontos mais 5% do valor; tempos de relógio não se comparam, tamanhos e contagens são exatos.
EXTRAS_CHECKS = {
    "capitulo": "08-extras",
    "padrao": (0.03, 0.05),
    "tolerancias": {"kv_cache_speedup": None, "kv_cache_tokens_por_s": None, "kv_cache_ms_ultimo_passo": None,
                    "kv_cache_tokens_novos": 0, "int8.mb_float32": 0, "int8.mb_int8": 0, "ddp.processos": 0,
                    "tamanho_dataset.tokens": 0, "tamanho_dataset.fracoes": 0, "rag_palavra_chave": 1,
                    "geracao": (0.05, 0.15), "limites.perplexidade": (0.0, 0.1),
                    "kv_cache_speedup_por_tamanho": None, "kv_cache_ms_passo_2": None, "kv_cache_execucoes_s": None,
                    "kv_cache_maior_variacao_s": None, "kv_cache_distancia_s": None, "modelos": 0,
                    "ddp_igual_processo_unico": 0, "juiz_probabilidade.respostas_validacao": 0,
                    "preferencia.pares_validacao": 0, "roteador_aprendido.somas_teste": 0,
                    "roteador_aprendido.outras_tarefas": 0, "dpo_preferencia_p": None},
    "conclusoes": {
        "o cache de K e V acelera a geração": "kv_cache_speedup > 1.5",
        "o int8 guarda o modelo em menos da metade dos bytes": "m('int8.mb_int8') < m('int8.mb_float32') / 2",
        "dois processos com DDP chegam aos mesmos pesos": "m('ddp.pesos_iguais')",
        "2 processos com lote B chegam aos pesos de 1 processo com lote 2B": "ddp_igual_processo_unico",
        "o cache acelera mais quanto mais tokens se gera":
            "m('kv_cache_speedup_por_tamanho.80') > m('kv_cache_speedup_por_tamanho.10')",
        "mais texto de treino, menor perda de validação":
            "m('tamanho_dataset.val.3.media') < m('tamanho_dataset.val.0.media')",
        "o BM25 acha o trecho certo muito acima do acaso": "m('rag_hit_at_k.bm25.3') > 10 * m('rag_hit_at_k.acaso.3')",
        "o juiz pela probabilidade concorda além do acaso (intervalo acima de zero)":
            "m('juiz_probabilidade_kappa_ic95.0') > 0 and juiz_probabilidade_kappa > juiz_kappa + 0.3",
        "o DPO não muda a preferência nos pares de validação":
            "abs(dpo_preferencia_accuracy - sft_controle_preferencia_accuracy) < 0.1",
        "o roteador aprendido acerta as somas de redação nova que a regra perde":
            "roteador_aprendido_accuracy >= 0.85 and roteador_aprendido_accuracy > roteador_regra_accuracy + 0.5",
    },
}


# %% 08-extras/notebook.ipynb · célula 25
def format_chat_turn(message: str, answer: str | None = None) -> str:
    """Um turno no formato do capítulo 07: instrução e, se já houver, a resposta."""
    texto = format_input({"instrucao": message, "entrada": ""}, preambulo=False) + RESPONSE_HEADER
    return texto if answer is None else f"{texto} {answer}"


def build_chat_prompt(historico: list[tuple[str, str]], mensagem: str, tokenizer, max_prompt_tokens: int,
                      header: str = PREAMBULO) -> tuple[list[int], int]:
    """Ids do prompt de chat (cabeçalho + turnos mais recentes que couberem + mensagem nova) e nº de turnos mantidos.

    `tokenizer` é o do modelo. Descarta os turnos mais antigos até o prompt ter no máximo `max_prompt_tokens`
    tokens; o cabeçalho fica sempre. O texto do usuário é só texto: um "<|endoftext|>" digitado não vira o token
    especial.
    """
    if not mensagem.strip():
        raise ValueError("A mensagem está vazia: escreva alguma coisa para o modelo responder.")
    for n_turnos in range(len(historico), -1, -1):
        turnos = [format_chat_turn(u, a) for u, a in historico[len(historico) - n_turnos:]]
        partes = ([header] if header else []) + turnos + [format_chat_turn(mensagem)]
        ids = tokenizer.encode("\n\n".join(partes), disallowed_special=())
        if len(ids) <= max_prompt_tokens:
            return ids, n_turnos
    raise ValueError(f"Mesmo sem histórico, o cabeçalho e a mensagem têm {len(ids)} tokens, mais que os "
                     f"{max_prompt_tokens} disponíveis: encurte a mensagem ou peça menos tokens de resposta.")


def conversar(model, historico: list[tuple[str, str]], mensagem: str, tokenizer, max_new_tokens: int = 20,
              header: str = PREAMBULO, verbose: bool = True) -> str:
    """Um turno de chat: monta o prompt dentro da janela de contexto, gera a resposta (gulosa) e a devolve.

    `tokenizer` é o do modelo (o que `load_instruction_model` devolve junto com ele): ele monta o prompt e o seu
    fim de texto encerra a resposta. `historico` é a lista de turnos anteriores [(mensagem, resposta), ...]; o
    turno novo é acrescentado a ela. Com `verbose`, imprime o orçamento de tokens do turno.
    """
    context_length = model.pos_emb.weight.shape[0]
    if max_new_tokens >= context_length:
        raise ValueError(f"max_new_tokens={max_new_tokens} não deixa espaço para o prompt na janela de "
                         f"{context_length} tokens.")
    ids, mantidos = build_chat_prompt(historico, mensagem, tokenizer, context_length - max_new_tokens, header)
    device = next(model.parameters()).device
    model.eval()
    saida = generate(model, torch.tensor([ids], device=device), max_new_tokens, context_length,
                     eos_id=tokenizer.eot_token)
    resposta = extract_response(RESPONSE_HEADER + tokenizer.decode(saida[0, len(ids):].tolist()))
    if verbose:
        n_header = len(tokenizer.encode(header, disallowed_special=())) if header else 0
        print(f"  [orçamento] prompt {len(ids)} (cabeçalho {n_header}, {mantidos} de {len(historico)} turnos "
              f"anteriores) + resposta até {max_new_tokens} = {len(ids) + max_new_tokens} de {context_length} tokens")
    historico.append((mensagem, resposta))
    return resposta


# %% 08-extras/notebook.ipynb · célula 33
class ChatSession:
    """Uma conversa com o modelo: guarda o histórico e, a cada mensagem, chama `conversar`.

    `tokenizer` é o do modelo. `history` é a lista de turnos [(mensagem, resposta), ...]. O prompt de cada mensagem
    nova leva o cabeçalho e os turnos mais recentes que couberem na janela, no formato do capítulo 07. Sem `header`,
    usa o cabeçalho que o modelo do capítulo 07 viu no treino deste modo (o preâmbulo, se o modo treinou com ele).
    """

    def __init__(self, model, tokenizer, max_new_tokens: int = 20, header: str | None = None):
        context_length = model.pos_emb.weight.shape[0]
        if max_new_tokens >= context_length:
            raise ValueError(f"max_new_tokens={max_new_tokens} não deixa espaço para o prompt na janela de "
                             f"{context_length} tokens.")
        if header is None:
            header = PREAMBULO if INSTRUCTION_SETTINGS[get_mode()]["preambulo"] else ""
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.header = header
        self.max_prompt_tokens = context_length - max_new_tokens
        self.history: list[tuple[str, str]] = []
        self.turns_in_prompt = 0          # turnos anteriores que couberam no prompt da última mensagem

    def prompt_for(self, message: str) -> str:
        """O texto exato que o modelo receberia se `message` fosse enviada agora."""
        ids, _ = build_chat_prompt(self.history, message, self.tokenizer, self.max_prompt_tokens, self.header)
        return self.tokenizer.decode(ids)

    def send(self, message: str) -> str:
        """Envia uma mensagem e devolve a resposta, que entra no histórico.

        Uma mensagem vazia (ou longa demais para a janela) levanta ValueError com a explicação e não muda nada.
        """
        message = message.strip()
        _, kept = build_chat_prompt(self.history, message, self.tokenizer, self.max_prompt_tokens, self.header)
        answer = conversar(self.model, self.history, message, self.tokenizer, self.max_new_tokens, self.header,
                           verbose=False)
        self.turns_in_prompt = kept
        return answer

    def status(self) -> str:
        """Quantos turnos anteriores o modelo viu na última resposta."""
        anteriores = max(len(self.history) - 1, 0)
        return f"o modelo viu {self.turns_in_prompt} de {anteriores} turnos anteriores"

    def clear(self) -> None:
        """Esquece a conversa inteira."""
        self.history.clear()
        self.turns_in_prompt = 0

    def to_html(self) -> str:
        """O histórico em HTML (o texto vai escapado: uma mensagem com `<` aparece como foi escrita)."""
        if not self.history:
            return "<i>Nenhuma mensagem ainda. Escreva abaixo e clique em Enviar.</i>"
        linhas = []
        for mensagem, resposta in self.history:
            resposta = html.escape(resposta) if resposta else "<i>(resposta vazia)</i>"
            linhas.append(f"<b>Você:</b> {html.escape(mensagem)}<br><b>Modelo:</b> {resposta}")
        return "<br><br>".join(linhas)


def chat_widget(session: ChatSession):
    """A caixa de chat (ipywidgets): um campo de texto, os botões Enviar e Limpar e o histórico.

    Ela só liga os botões à `session`, onde mora toda a lógica.
    """
    import ipywidgets as widgets   # opcional: só a caixa de chat precisa dele (chat_loop funciona sem)

    conversa = widgets.HTML(session.to_html())
    aviso = widgets.HTML("")
    caixa = widgets.Text(placeholder="Escreva uma mensagem e clique em Enviar",
                         layout=widgets.Layout(width="60%"))
    enviar = widgets.Button(description="Enviar", button_style="primary")
    limpar = widgets.Button(description="Limpar")

    def ao_enviar(_):
        try:
            session.send(caixa.value)
            caixa.value, aviso.value = "", f"<small>{session.status()}</small>"
        except ValueError as erro:
            aviso.value = f"<b>{html.escape(str(erro))}</b>"
        conversa.value = session.to_html()

    def ao_limpar(_):
        session.clear()
        conversa.value, aviso.value = session.to_html(), ""

    enviar.on_click(ao_enviar)
    limpar.on_click(ao_limpar)
    return widgets.VBox([conversa, widgets.HBox([caixa, enviar, limpar]), aviso])


def chat_loop(session: ChatSession, input_fn=input, print_fn=print) -> None:
    """A conversa sem widgets: lê mensagens com `input()` e para numa linha vazia."""
    print_fn("Converse com o modelo (uma linha vazia encerra).")
    while True:
        mensagem = input_fn("Você: ")
        if not mensagem.strip():
            print_fn("Fim da conversa.")
            return
        try:
            print_fn(f"Modelo: {session.send(mensagem)}   ({session.status()})")
        except ValueError as erro:
            print_fn(str(erro))


def show_chat(session: ChatSession) -> None:
    """Mostra a caixa de chat; sem o ipywidgets, explica como conversar com `chat_loop`."""
    try:
        caixa = chat_widget(session)
    except ImportError:
        print("O ipywidgets não está instalado, então não há caixa de chat. Instale com `pip install ipywidgets` "
              "ou converse pelo teclado com `chat_loop(sessao)` (uma linha vazia encerra).")
        return
    from IPython.display import display
    display(caixa)


# %% 08-extras/notebook.ipynb · célula 49
def sequence_logprob(model, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Soma dos log-probabilidades que `model` dá aos tokens marcados em `response_mask`, por sequência.

    `input_ids` e `response_mask` têm formato (lote, n); `response_mask[i, t]` é True se o token t da sequência
    i faz parte da resposta. O token t é previsto pela posição t - 1, então o primeiro token nunca conta.
    """
    logits = model(input_ids[:, :-1])
    log_probs = torch.log_softmax(logits, dim=-1)
    token_log_probs = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)     # (lote, n - 1)
    return (token_log_probs * response_mask[:, 1:]).sum(dim=-1)


# %% 08-extras/notebook.ipynb · célula 62
def attention_with_cache(att: MultiHeadAttention, x: torch.Tensor, past: tuple | None):
    """Atenção causal de `att` para os tokens novos `x` (lote, n, d), reaproveitando chaves e valores de `past`.

    Devolve (saída, (chaves, valores)), com o cache estendido pelos tokens novos.
    """
    b, n, _ = x.shape

    def split_heads(t: torch.Tensor) -> torch.Tensor:       # (b, n, d_out) -> (b, cabeças, n, head_dim)
        return t.view(b, n, att.num_heads, att.head_dim).transpose(1, 2)

    queries = split_heads(att.W_query(x))
    keys, values = split_heads(att.W_key(x)), split_heads(att.W_value(x))
    if past is not None:
        keys = torch.cat((past[0], keys), dim=2)
        values = torch.cat((past[1], values), dim=2)
    total = keys.shape[2]
    scores = queries @ keys.transpose(2, 3)                           # (b, cabeças, n, total)
    futuro = torch.ones(n, total, dtype=torch.bool, device=x.device).triu(diagonal=total - n + 1)
    weights = torch.softmax(scores.masked_fill(futuro, float("-inf")) / att.head_dim ** 0.5, dim=-1)
    context = (att.dropout(weights) @ values).transpose(1, 2).reshape(b, n, att.d_out)
    return att.out_proj(context), (keys, values)


class GPTModelKV(GPTModel):
    """O GPTModel de sempre (mesmos pesos e nomes) com um passo extra, `forward_with_cache`, para gerar rápido."""

    @classmethod
    def from_gpt(cls, model: GPTModel) -> "GPTModelKV":
        """Cópia de um GPTModel já treinado, agora com cache (a configuração vem dos formatos dos pesos)."""
        att = model.trf_blocks[0].att
        cfg = {"vocab_size": model.tok_emb.num_embeddings, "context_length": model.pos_emb.num_embeddings,
               "emb_dim": model.tok_emb.embedding_dim, "n_heads": att.num_heads,
               "n_layers": len(model.trf_blocks), "drop_rate": att.dropout.p,
               "qkv_bias": att.W_query.bias is not None}
        kv_model = cls(cfg).to(model.pos_emb.weight.device)
        kv_model.load_state_dict(model.state_dict())
        return kv_model.train(model.training)

    def forward_with_cache(self, in_idx: torch.Tensor, cache: list | None = None):
        """Passa só os tokens novos `in_idx` (lote, n); `cache` tem (chaves, valores) de cada bloco, ou None.

        Devolve (logits dos tokens novos, cache estendido).
        """
        start = 0 if cache is None else cache[0][0].shape[2]
        n = in_idx.shape[1]
        if start + n > self.pos_emb.num_embeddings:
            raise ValueError(f"O cache passaria a {start + n} posições, mais que a janela de contexto "
                             f"({self.pos_emb.num_embeddings}).")
        positions = torch.arange(start, start + n, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        new_cache = []
        for i, block in enumerate(self.trf_blocks):
            out, kv = attention_with_cache(block.att, block.norm1(x), None if cache is None else cache[i])
            x = x + block.drop_shortcut(out)
            x = x + block.drop_shortcut(block.ff(block.norm2(x)))
            new_cache.append(kv)
        return self.out_head(self.final_norm(x)), new_cache


def generate_with_kv_cache(model: GPTModelKV, idx: torch.Tensor, max_new_tokens: int,
                           context_size: int | None = None, eos_id: int | None = None) -> torch.Tensor:
    """Geração gulosa com KV cache: o prompt passa uma vez pelo modelo; depois, um token por passo.

    Dá os mesmos tokens que `generate(..., temperature=0.0)`. Quando a janela de contexto enche, o cache deixa de
    valer (as posições de todos os tokens mudariam) e cada passo volta a recalcular a janela inteira.
    """
    if not hasattr(model, "forward_with_cache"):
        raise TypeError("Este modelo não tem KV cache: converta-o antes com GPTModelKV.from_gpt(model).")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError("O prompt está vazio: passe pelo menos um token (tensor de formato (lote, n), n ≥ 1).")
    context_size = context_size or model.pos_emb.num_embeddings
    cache = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if cache is None or cache[0][0].shape[2] >= context_size:
                logits, cache = model.forward_with_cache(idx[:, -context_size:])   # janela inteira
            else:
                logits, cache = model.forward_with_cache(idx[:, -1:], cache)      # só o token novo
            idx_next = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            if eos_id is not None and bool((idx_next == eos_id).all()):
                break
            idx = torch.cat((idx, idx_next), dim=1)
    return idx


# %% 08-extras/notebook.ipynb · célula 77
def compute_dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                     reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
                     beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Perda DPO de um lote de pares de preferência, a partir dos log-probabilidades das respostas inteiras.

    Recompensa implícita: r = beta * (log pi(y|x) - log pi_ref(y|x)); perda = -log sigmoid(r_escolhida - r_rejeitada),
    média no lote. Devolve (perda, recompensa média das escolhidas, recompensa média das rejeitadas).
    """
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, chosen_rewards.detach().mean(), rejected_rewards.detach().mean()


# %% 08-extras/notebook.ipynb · célula 93
def words_for_search(text: str) -> list[str]:
    """Palavras em minúsculas e sem acentos ("Tifóide" -> "tifoide"), o vocabulário da busca lexical."""
    sem_acento = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return re.findall(r"[a-z0-9]+", sem_acento)


class BM25:
    """Busca lexical Okapi BM25 sobre uma lista de documentos (textos).

    `scores(consulta)` dá uma pontuação por documento; `search(consulta, k)` devolve os índices dos k melhores.
    """

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75):
        if not documents:
            raise ValueError("BM25 precisa de pelo menos um documento.")
        self.k1, self.b = k1, b
        self.term_freqs = [Counter(words_for_search(d)) for d in documents]
        self.lengths = [sum(tf.values()) for tf in self.term_freqs]
        self.avg_length = sum(self.lengths) / len(self.lengths)
        doc_freq = Counter(t for tf in self.term_freqs for t in tf)
        n = len(documents)
        self.idf = {t: math.log((n - df + 0.5) / (df + 0.5) + 1) for t, df in doc_freq.items()}

    def scores(self, query: str) -> list[float]:
        terms = words_for_search(query)
        result = []
        for tf, length in zip(self.term_freqs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_length)
            result.append(sum(self.idf[t] * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in terms if t in tf))
        return result

    def search(self, query: str, k: int = 5) -> list[int]:
        s = self.scores(query)
        return sorted(range(len(s)), key=lambda i: -s[i])[:k]


# %% 08-extras/notebook.ipynb · célula 104
def cohen_kappa(rater_a: list, rater_b: list) -> float:
    """Kappa de Cohen entre dois avaliadores que rotularam os mesmos itens.

    kappa = (p_o - p_e) / (1 - p_e): p_o é a concordância observada; p_e, a esperada se cada avaliador sorteasse
    rótulos com as próprias frequências. 1 = concordância perfeita; 0 = a do acaso (a de um avaliador constante);
    negativo = abaixo do acaso.
    """
    if len(rater_a) != len(rater_b):
        raise ValueError(f"Os dois avaliadores precisam rotular os mesmos itens: {len(rater_a)} contra "
                         f"{len(rater_b)} rótulos.")
    if not rater_a:
        raise ValueError("Sem itens: o kappa precisa de pelo menos um item rotulado pelos dois avaliadores.")
    n = len(rater_a)
    p_o = sum(a == b for a, b in zip(rater_a, rater_b)) / n
    freq_a, freq_b = Counter(rater_a), Counter(rater_b)
    p_e = sum(freq_a[c] * freq_b[c] for c in freq_a) / n ** 2
    if p_e == 1.0:
        raise ValueError("Kappa indefinido: os dois avaliadores deram o mesmo rótulo a todos os itens (p_e = 1).")
    return (p_o - p_e) / (1 - p_e)


def verdict_logprobs(model, tokenizer, entry: dict, verdicts=(" sim", " não"),
                     preambulo: bool | None = None) -> list[float]:
    """Log-probabilidade médio por token de cada veredito como resposta ao pedido `entry` (formato do cap. 07).

    `tokenizer` é o do modelo. Com vereditos de um token só (" sim" e " não" no tokenizador do curso), é o
    log p do próximo token depois de '### Resposta:'; com mais tokens, a média impede que o veredito mais longo
    perca só por ser longo. Só as últimas `context_length` posições entram no modelo.
    """
    prompt = tokenizer.encode(format_input(entry, preambulo) + RESPONSE_HEADER, disallowed_special=())
    context = model.pos_emb.num_embeddings
    device = next(model.parameters()).device
    scores = []
    with torch.no_grad():
        for verdict in verdicts:
            verdict_ids = tokenizer.encode(verdict)
            if not verdict_ids or len(verdict_ids) >= context:
                raise ValueError(f"O veredito {verdict!r} tem {len(verdict_ids)} tokens: precisa ter pelo menos um "
                                 f"e caber na janela de {context}.")
            ids = (prompt + verdict_ids)[-context - 1:]
            logits = model(torch.tensor([ids[:-1]], device=device))[0, -len(verdict_ids):]
            log_probs = torch.log_softmax(logits, dim=-1)
            alvo = torch.tensor(verdict_ids, device=device)
            scores.append(log_probs[torch.arange(len(verdict_ids), device=device), alvo].mean().item())
    return scores


# %% 08-extras/notebook.ipynb · célula 113
def run_torchrun(script: str, args: list[str], nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """Roda `torchrun --standalone --nproc_per_node=nproc script args` (como `python -m torch.distributed.run`,
    que funciona mesmo sem o atalho no PATH) e devolve o processo terminado, com a saída e o erro em texto.

    No Windows, o PyTorch vem sem a biblioteca libuv que o torchrun usa por padrão: lá a função liga USE_LIBUV=0.
    """
    ambiente = dict(os.environ)
    if sys.platform == "win32":
        ambiente["USE_LIBUV"] = "0"
    comando = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script,
               *args]
    return subprocess.run(comando, capture_output=True, text=True, timeout=timeout, env=ambiente)
