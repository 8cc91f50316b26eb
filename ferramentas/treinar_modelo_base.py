"""Treina o modelo base do curso: o GPT do capítulo 05 (tamanho rápido), com o código do curso, por mais passos.

É o modelo que os capítulos 06–08 usam no modo rápido (`load_base_model`, fonte "curso"). O treino é o mesmo do
capítulo 05 — mesma arquitetura, mesmo tokenizador, mesmos livros, AdamW com aquecimento e cosseno, a mesma função
`pretrain_base_model` — só que com as configurações `COURSE_BASE_SETTINGS` (3 200 passos, cerca de 2,8 épocas:
uns 12 minutos em 2 núcleos de CPU livres).

Grava, na pasta de saída (por padrão `05-pretreino/modelo-base/`):
- `modelo-base-curso.safetensors`: os pesos (float32) e o tokenizador, num arquivo só;
- `cartao.json`: receita, passos, tokens, tempo, máquina, sha256 do arquivo; bits/caractere no livro de validação
  ao lado das tabelas de unigramas e bigramas contadas no texto de treino inteiro e medidas no mesmo livro; e a
  curva da validação inteira ao longo do treino, ao lado de uma tabela de bigramas contada nas MESMAS janelas que
  o GPT tinha lido até ali (com o k escolhido de novo a cada tamanho);
- `perdas.png`: essa curva em figura.

O tempo gravado é o de relógio desta execução: com a CPU dividida com outros processos, ele cresce (diga-o em
`--nota`); os números do modelo não dependem da velocidade, porque o treino para num número fixo de passos (com
outro número de threads, as contas em ponto flutuante mudam só nas últimas casas).

Uso (da raiz do repositório, com os dados do capítulo 05 no cache ou em LLM_DADOS_ESPELHO):
    python ferramentas/treinar_modelo_base.py
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ))

import matplotlib                                  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt                    # noqa: E402
import torch                                       # noqa: E402

from llm_do_zero.oficina import describe_device, sha256_of   # noqa: E402
from llm_do_zero.pretreino import (COURSE_BASE_FILE, COURSE_BASE_SETTINGS, best_bigram_k, bigram_loss,  # noqa: E402
                                   bigram_loss_on_windows, bits_per_char, course_tokenizer,
                                   load_pretraining_texts, pretrain_base_model, save_course_base_model,
                                   unigram_loss)


def desenhar(cartao: dict, destino: Path) -> None:
    """A figura das perdas a partir do cartão: o GPT e as tabelas na validação inteira, contra o texto lido."""
    curva = cartao["curva_validacao_inteira"]
    fig, eixo = plt.subplots(figsize=(7, 3.6))
    milhoes = [t / 1e6 for t in curva["tokens"]]
    eixo.plot(milhoes, curva["gpt_bits_por_caractere"], "o-", label="GPT (validação inteira)")
    eixo.plot(milhoes, curva["bigrama_mesmas_janelas_bits_por_caractere"], "s-",
              label="bigramas contados nas mesmas janelas")
    eixo.axhline(cartao["validacao"]["bigrama_bits_por_caractere"], color="gray", linestyle="--",
                 label="bigramas contados no treino inteiro")
    eixo.axhline(cartao["validacao"]["unigrama_bits_por_caractere"], color="gray", linestyle=":",
                 label="unigramas (treino inteiro)")
    eixo.set_xlabel("milhões de tokens de treino lidos pelo GPT")
    eixo.set_ylabel("bits por caractere (Memorial de Aires)")
    epocas = f"{cartao['epocas']:.2f}".replace(".", ",")
    eixo.set_title(f"Modelo base do curso: {cartao['passos']} passos, {epocas} épocas")
    eixo.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(destino, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saida", type=Path, default=RAIZ / "05-pretreino" / "modelo-base",
                        help="pasta onde gravar o modelo, o cartão e a figura")
    parser.add_argument("--semente", type=int, default=123)
    parser.add_argument("--so-figura", action="store_true",
                        help="não treina: só redesenha perdas.png a partir do cartao.json da pasta de saída")
    parser.add_argument("--nota", default="", help="uma observação sobre a execução, gravada no cartão (por exemplo, "
                                                  "se a CPU estava dividida com outros processos)")
    args = parser.parse_args()
    if args.so_figura:
        desenhar(json.loads((args.saida / "cartao.json").read_text(encoding="utf-8")), args.saida / "perdas.png")
        return
    cfg = COURSE_BASE_SETTINGS
    device = torch.device("cpu")
    model, historico = pretrain_base_model("rapido", device, seed=args.semente, settings=cfg, save=False)
    tokenizer = course_tokenizer()
    texto_treino, texto_val = load_pretraining_texts("rapido", cfg)
    ids_treino = tokenizer.encode(texto_treino, allowed_special={"<|endoftext|>"})
    ids_val = tokenizer.encode(texto_val, allowed_special={"<|endoftext|>"})
    V, n_tok, n_car = tokenizer.n_vocab, len(ids_val), len(texto_val)

    def bpc(perda):
        return round(bits_per_char(perda, n_tok, n_car), 4)

    k = best_bigram_k(ids_treino, V)
    curva = {"passos": historico["val_inteira"]["passos"], "tokens": historico["val_inteira"]["tokens"],
             "gpt_bits_por_caractere": [bpc(p) for p in historico["val_inteira"]["perdas"]],
             "bigrama_mesmas_janelas_bits_por_caractere": [], "bigrama_mesmas_janelas_k": []}
    for passo, tokens in zip(curva["passos"], curva["tokens"]):
        if tokens > len(ids_treino):     # passada uma época, a tabela das janelas lidas é a do treino inteiro
            curva["bigrama_mesmas_janelas_bits_por_caractere"].append(None)
            curva["bigrama_mesmas_janelas_k"].append(None)
            continue
        perda, k_janelas = bigram_loss_on_windows(historico["janelas"][:passo * cfg["batch_size"]], ids_val, V)
        curva["bigrama_mesmas_janelas_bits_por_caractere"].append(bpc(perda))
        curva["bigrama_mesmas_janelas_k"].append(k_janelas)
    args.saida.mkdir(parents=True, exist_ok=True)
    arquivo = save_course_base_model(args.saida / COURSE_BASE_FILE, model, cfg["model"], tokenizer)
    cartao = {
        "arquivo": arquivo.name, "sha256": sha256_of(arquivo), "bytes": arquivo.stat().st_size,
        "comando": "python ferramentas/treinar_modelo_base.py",
        "receita": {chave: valor for chave, valor in cfg.items() if chave != "model"},
        "modelo": cfg["model"], "semente": args.semente, "tokenizador": tokenizer.name,
        "parametros": sum(p.numel() for p in model.parameters()),
        "passos": historico["passos"], "tokens_vistos": historico["tokens_seen"][-1],
        "epocas": round(historico["tokens_seen"][-1] / len(ids_treino), 2),
        "tempo_s": round(historico["tempo_s"], 1),
        "maquina": f"{describe_device(device)} ({platform.machine()}, {platform.processor() or 'processador ?'})",
        "torch": torch.__version__, "data": time.strftime("%Y-%m-%d"), "nota": args.nota,
        "validacao": {"livros": cfg["val_books"], "tokens": n_tok, "caracteres": n_car,
                      "val_loss": round(historico["val_loss"], 4), "val_bits_por_caractere": bpc(historico["val_loss"]),
                      "bigrama_bits_por_caractere": bpc(bigram_loss(ids_treino, ids_val, V, k)), "bigrama_k": k,
                      "unigrama_bits_por_caractere": bpc(unigram_loss(ids_treino, ids_val, V))},
        "curva_validacao_inteira": curva,
    }
    (args.saida / "cartao.json").write_text(json.dumps(cartao, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    desenhar(cartao, args.saida / "perdas.png")
    print(json.dumps(cartao["validacao"], ensure_ascii=False, indent=1))
    print(f"{arquivo} ({cartao['bytes'] / 1e6:.1f} MB), sha256 {cartao['sha256']}, {cartao['tempo_s']:.0f} s")


if __name__ == "__main__":
    main()
