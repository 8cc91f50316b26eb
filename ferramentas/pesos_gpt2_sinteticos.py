#!/usr/bin/env python3
"""Escreve um `model.safetensors` do GPT-2 com pesos aleatórios, no formato exato do Hugging Face.

Serve para testar o caminho dos pesos do GPT-2 (espelho → cache → conferência do cabeçalho → carregamento estrito)
numa máquina sem acesso ao Hugging Face, com os formatos reais do tamanho escolhido (o `gpt2` tem 124 M de
parâmetros, ~0,5 GB). Os pesos são sorteados (N(0; 0,02); vieses em 0 e LayerNorms em 1): o modelo carrega e roda, mas
não sabe nada — os números que sairem dele não dizem nada sobre o GPT-2 de verdade.

Uso:
    python ferramentas/pesos_gpt2_sinteticos.py PASTA [--tamanho gpt2] [--semente 0]
    export LLM_DADOS_ESPELHO=PASTA      # o curso passa a achar PASTA/openai-community/gpt2/model.safetensors
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_do_zero.pretreino import GPT2_SIZES, gpt2_expected_shapes  # noqa: E402


def pesos_sinteticos(size: str = "gpt2", seed: int = 0) -> dict[str, torch.Tensor]:
    """Um tensor float32 para cada peso do `model.safetensors` do tamanho pedido."""
    gerador = torch.Generator().manual_seed(seed)
    pesos = {}
    for nome, formato in gpt2_expected_shapes(size).items():
        if "ln_" in nome and nome.endswith(".weight"):
            pesos[nome] = torch.ones(formato)                  # LayerNorm começa como identidade
        elif nome.endswith(".bias"):
            pesos[nome] = torch.zeros(formato)
        else:
            pesos[nome] = torch.randn(formato, generator=gerador) * 0.02
    return pesos


def escrever(pasta: Path, size: str = "gpt2", seed: int = 0) -> Path:
    """Grava PASTA/openai-community/<size>/model.safetensors (de forma atômica) e devolve o caminho."""
    from safetensors.torch import save_file

    destino = Path(pasta) / "openai-community" / size / "model.safetensors"
    destino.parent.mkdir(parents=True, exist_ok=True)
    temporario = destino.with_name(destino.name + ".part")
    save_file(pesos_sinteticos(size, seed), str(temporario), metadata={"format": "pt"})
    temporario.replace(destino)
    return destino


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pasta", type=Path, help="a pasta do espelho (LLM_DADOS_ESPELHO)")
    parser.add_argument("--tamanho", default="gpt2", choices=list(GPT2_SIZES))
    parser.add_argument("--semente", type=int, default=0)
    args = parser.parse_args(argv)
    destino = escrever(args.pasta, args.tamanho, args.semente)
    print(f"{destino} ({destino.stat().st_size / 1e6:.0f} MB, pesos aleatórios no formato do {args.tamanho})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
